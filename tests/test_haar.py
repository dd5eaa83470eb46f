"""Haar frames by Gram-Schmidt (pdlt.ensembles.internals.haar): exact identities, the Haar law, and the CPU hang it avoids."""
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt

Z = 4.5


@pytest.mark.parametrize("n,k", [(1, 1), (5, 1), (8, 3), (16, 16), (40, 7)])
def test_orthonormal_and_equal_to_sign_fixed_qr(n, k):
    G = np.asarray(jax.random.normal(jax.random.key(n * 100 + k), (n, k)))
    Q = np.asarray(pdlt.ensembles.orthonormalize(G))
    np.testing.assert_allclose(Q.T @ Q, np.eye(k), atol=1e-13)
    q, r = np.linalg.qr(G)
    np.testing.assert_allclose(Q, q * np.sign(np.diag(r))[None, :], atol=1e-11)
    R = Q.T @ G
    np.testing.assert_allclose(np.tril(R, -1), 0.0, atol=1e-12)
    assert (np.diag(R) > 0).all()


def test_haar_moments():
    # Haar O(n): E[Q_ij^2] = 1/n, E[tr Q] = 0, E[(tr Q)^2] = 1 (n >= 2)
    n, M = 6, 20000
    keys = jax.random.split(jax.random.key(1), M)
    Q = np.asarray(jax.jit(jax.vmap(lambda k: pdlt.ensembles.haar_frame(k, n, n)))(keys))
    for stat, want in ((Q[:, 0, 0] ** 2, 1 / n), (np.trace(Q, axis1=1, axis2=2), 0.0),
                       (np.trace(Q, axis1=1, axis2=2) ** 2, 1.0)):
        m, se = pdlt.mean_and_se(stat)
        assert abs(float(m) - want) < Z * float(se), (float(m), want, float(se))


def test_haar_frame_validation():
    with pytest.raises(pdlt.PDLTValueError, match="haar_frame"):
        pdlt.ensembles.haar_frame(jax.random.key(0), 3, 4)


def test_independent_batched_frames_in_one_program_finish():
    """Regression: vmapped LAPACK QRs of two independent layers hung jaxlib 0.10.2 on 2 cores."""
    code = textwrap.dedent("""
        import jax, jax.numpy as jnp, pdlt
        jax.config.update("jax_enable_x64", True)
        def two(k):
            k1, k2, k3 = jax.random.split(k, 3)
            return (pdlt.ensembles.haar_frame(k1, 8, 4).sum() + pdlt.ensembles.haar_frame(k2, 8, 8).sum()
                    + pdlt.ensembles.haar_frame(k3, 8, 8).sum())
        f = jax.jit(jax.vmap(two))
        for M in (10, 300, 3000, 300):
            f(jax.random.split(jax.random.key(M), M)).block_until_ready()
        print("done")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0 and "done" in out.stdout, out.stderr[-2000:]
