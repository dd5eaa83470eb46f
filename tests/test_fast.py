"""pdlt.ensembles.internals.fast: the same per-network contract as pdlt.ensemble_metrics, exactly (threefry, Cholesky factor,
float64) or statistically (feature factor, SplitMix64 normals, float32), at 4.5 sigma with fixed seeds."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt
from conftest import Z
from pdlt.ensembles import fast_ensemble_moments, fast_ensemble_metrics, fast_network_metrics, splitmix_normal

KEY = jax.random.key(2024)


def _x(N, n0):
    return jax.random.normal(jax.random.key(1), (N, n0))


def _max_z(A, B):
    """Largest two-sample |z| over entries of layers 2..L (layer 1 is deterministic), means and variances."""
    A, B = np.asarray(A, np.float64)[:, 1:], np.asarray(B, np.float64)[:, 1:]
    (ma, sa), (mb, sb) = pdlt.mean_and_se(A), pdlt.mean_and_se(B)
    (va, ea), (vb, eb) = pdlt.variance_and_se(A), pdlt.variance_and_se(B)
    return float(np.max(np.abs(ma - mb) / np.hypot(sa, sb))), float(np.max(np.abs(va - vb) / np.hypot(ea, eb)))


@pytest.mark.parametrize("method", ["conditional", "explicit"])
def test_threefry_float64_reproduces_reference_per_network(method):
    x = _x(5, 7)
    kw = dict(widths=(9, 9, 2), C_b=0.3, C_W=1.5, activation="tanh", n_nets=8, method=method)
    G0, z0 = pdlt.ensemble_metrics(KEY, x, **kw, progress=False)
    G1, z1 = fast_ensemble_metrics(KEY, x, **kw, chunk=4, progress=False)
    np.testing.assert_allclose(G1, G0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(z1, z0, rtol=1e-12, atol=1e-14)
    G2, z2 = fast_network_metrics(KEY, 3, x, **{k: v for k, v in kw.items() if k != "n_nets"})
    np.testing.assert_allclose(G2, G0[3], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("rng,dtype", [("threefry", jnp.float64), ("splitmix", jnp.float64),
                                       ("splitmix", jnp.float32)])
def test_statistically_identical_to_reference(rng, dtype):
    # N = 10 inputs > widths 6: the fast sampler uses the feature factor, the reference the Cholesky one
    x = _x(10, 4)
    kw = dict(widths=(6, 6, 6), C_b=0.1, C_W=2.0, activation="relu", n_nets=3000)
    G0, _ = pdlt.ensemble_metrics(jax.random.key(1), x, **kw, progress=False)
    G1 = fast_ensemble_metrics(jax.random.key(2), x, **kw, rng=rng, dtype=dtype, outputs=False, progress=False)
    zm, zv = _max_z(G0, G1)
    assert zm < Z and zv < Z, (zm, zv)
    # negative control: a 10% larger C_W in the fast sampler is rejected by the same rule
    G2 = fast_ensemble_metrics(jax.random.key(2), x, **dict(kw, C_W=2.2), rng=rng, dtype=dtype, outputs=False,
                               progress=False)
    assert max(_max_z(G0, G2)) > Z


def test_streaming_moments_equal_materialised_estimators():
    x = _x(4, 3)
    kw = dict(widths=(8, 8, 8), C_b=0.0, C_W=2.0, n_nets=256)
    G = fast_ensemble_metrics(KEY, x, **kw, outputs=False, progress=False)
    m = fast_ensemble_moments(KEY, x, **kw, chunk=64, vertex=True, progress=False)
    mean, se = pdlt.mean_and_se(G)
    var, vse = pdlt.variance_and_se(G)
    np.testing.assert_allclose(m["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(m["mean_se"], se, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(m["var"], var, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(m["var_se"], vse, rtol=1e-8, atol=1e-15)
    a, b = np.triu_indices(4)
    for ell in range(3):
        np.testing.assert_allclose(m["cov"][ell], np.cov(G[:, ell][:, a, b].T), rtol=1e-9, atol=1e-14)


def test_splitmix_normals_are_standard_and_independent():
    S = 400_000
    g = np.asarray(splitmix_normal(jax.random.key(0), (S,)))
    h = np.asarray(splitmix_normal(jax.random.key(1), (S,)))
    se = 1 / np.sqrt(S)
    assert abs(g.mean()) < Z * se
    assert abs(g.var() - 1) < Z * np.sqrt(2) * se
    assert abs((g**4).mean() - 3) < Z * np.sqrt(96) * se
    assert abs(np.mean(g * h)) < Z * se                       # different keys: uncorrelated
    assert abs(np.mean(g[1:] * g[:-1])) < Z * se              # neighbouring counters: uncorrelated
    assert abs(np.mean(g[: S // 2] * g[S // 2:])) < Z * se    # the two Box-Muller halves: uncorrelated
    # control: the same rule rejects a 2% scale error in the variance
    assert abs((1.02 * g).var() - 1) > Z * np.sqrt(2) * se


def test_bad_arguments_raise_before_compute():
    x = _x(3, 2)
    kw = dict(widths=(4, 2), C_b=0.0, C_W=1.0, n_nets=4)
    with pytest.raises(pdlt.PDLTValueError, match="rng"):
        fast_ensemble_metrics(KEY, x, **kw, rng="mersenne")
    with pytest.raises(pdlt.PDLTValueError, match="method"):
        fast_ensemble_metrics(KEY, x, **kw, method="exact")
    with pytest.raises(pdlt.PDLTValueError, match="C_W"):
        fast_ensemble_moments(KEY, x, **dict(kw, C_W=-1.0))
    with pytest.raises(pdlt.PDLTValueError, match="n_nets"):
        fast_ensemble_moments(KEY, x, **dict(kw, n_nets=1))
    with pytest.raises(pdlt.PDLTValueError, match="activation"):
        fast_network_metrics(KEY, 0, x, widths=(4, 2), C_b=0.0, C_W=1.0, activation="relu6")
