"""Tests of the beyond-the-book library pieces: residual branch scaling, non-iid weights, parametrizations."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import Z

import pdlt

X1 = np.ones((1, 8))


# ----------------------------------------------------------------- residual branch scaling
def test_resnet_kernel_recursion_closed_forms():
    for L in (1, 4, 32):
        K = np.asarray(pdlt.theory.resnet_kernel_recursion(1.3, L=L, alpha=0.5, C_W=1.0))
        assert K.shape == (L + 1,)
        assert K[-1] == pytest.approx(1.3 * (1 + 1 / (2 * L)) ** L, rel=1e-12)
        assert np.asarray(pdlt.theory.resnet_kernel_recursion(1.3, L=L, alpha=0.5, activation="linear", C_W=1.0))[-1] == pytest.approx(
            1.3 * (1 + 1 / L) ** L, rel=1e-12)
    # skip = 0, alpha = 0: the MLP recursion of the book
    K1 = np.array([[1.0, 0.3], [0.3, 0.8]])
    mlp = np.asarray(pdlt.kernel_recursion(K1, C_b=0.0, C_W=2.0, L=4, activation="tanh"))
    res = np.asarray(pdlt.theory.resnet_kernel_recursion(K1, L=3, alpha=0.0, C_W=2.0, activation="tanh", skip=0.0))
    np.testing.assert_allclose(res, mlp, rtol=1e-12)


def test_resnet_ode_is_limit_of_recursion():
    K0 = np.array([[1.0, 0.2], [0.2, 1.0]])
    ode = np.asarray(pdlt.theory.resnet_kernel_ode(K0, t_grid=[1.0], substeps=256, C_W=1.0))[0]
    assert ode[0, 0] == pytest.approx(np.exp(0.5), rel=1e-10)  # diagonal: dK/dt = K/2
    errs = [abs(np.asarray(pdlt.theory.resnet_kernel_recursion(K0, L=L, C_W=1.0))[-1][0, 1] - ode[0, 1]) for L in (64, 256)]
    assert errs[1] < errs[0] / 3.5  # first order in 1/L


def test_fluctuation_theory_matches_exact_linear_and_closure():
    """For linear nets the fluctuation theory, the V-only closure and the exact law all agree."""
    for L in (1, 4, 16):
        nv, KL = pdlt.theory.resnet_fluctuation(1.0, L=L, activation="linear", C_W=1.0)
        nc, _ = pdlt.theory.residual_vertex_closure(1.0, L=L, activation="linear", C_W=1.0)
        e = 1 / L
        exact = 2 + L * (4 * e + 2 * e**2) / (1 + e) ** 2  # leading order of (1+2/n)(E r^2/(E r)^2)^L - 1
        assert nv == pytest.approx(exact, rel=1e-9)
        assert nc == pytest.approx(exact, rel=1e-9)
    # ReLU: the first block is exact in both, they differ from the second on
    assert pdlt.theory.resnet_fluctuation(1.0, L=1, C_W=1.0)[0] == pytest.approx(pdlt.theory.residual_vertex_closure(1.0, L=1, C_W=1.0)[0], rel=1e-9)
    assert pdlt.theory.resnet_fluctuation(1.0, L=4, C_W=1.0)[0] > pdlt.theory.residual_vertex_closure(1.0,
            L=4, C_W=1.0)[0] + 0.3


def test_linear_log_norm_limits():
    for n in (4, 8, 16):
        m, v, r = pdlt.theory.linear_resnet_log_norm(n, 4096, C_W=1.0)
        assert m == pytest.approx(1 - 2 / n, abs=2e-3)
        assert v == pytest.approx(4 / n, rel=2e-3)
        assert r == pytest.approx((1 + 1 / 4096) ** 4096, rel=1e-12)


def test_resnet_samplers_agree_and_match_theory():
    """Conditional sampler vs explicit weights (same law) and vs the exact linear mean; with a control."""
    key = jax.random.key(11)
    n, L, M = 16, 4, 3000
    Qc = np.asarray(pdlt.theory.resnet_ensemble(key, X1, n=n, L=L, n_nets=M, C_W=1.0))[:, -1, 0, 0]
    expl = jax.jit(jax.vmap(lambda k: pdlt.theory.resnet_explicit(k, X1, n=n, L=L, C_W=1.0)[-1, 0]))
    ye = np.asarray(expl(jax.random.split(jax.random.key(12), M)))
    Qe = (ye**2).mean(-1)
    d, se = Qc.mean() - Qe.mean(), np.sqrt(Qc.var() / M + Qe.var() / M)
    assert abs(d) < Z * se
    dv = Qc.var() - Qe.var()
    sev = np.hypot(float(pdlt.variance_and_se(Qc)[1]), float(pdlt.variance_and_se(Qe)[1]))
    assert abs(dv) < Z * sev
    Ql = np.asarray(pdlt.theory.resnet_ensemble(key, X1, n=n, L=L, n_nets=M, activation="linear", C_W=1.0))[:, -1, 0, 0]
    m, s = pdlt.mean_and_se(Ql)
    assert abs(float(m) - (1 + 1 / L) ** L) < Z * float(s)
    assert abs(float(m) - (1 + 1 / (2 * L)) ** L) > Z * float(s)  # control: the ReLU value is rejected


def test_resnet_validation():
    with pytest.raises(pdlt.PDLTValueError, match="alpha"):
        pdlt.theory.resnet_kernel_recursion(1.0, L=4, alpha=-1.0, C_W=1.0)
    with pytest.raises(pdlt.PDLTValueError, match="L"):
        pdlt.theory.resnet_ensemble(jax.random.key(0), X1, n=4, L=0, n_nets=2, C_W=1.0)
    with pytest.raises(pdlt.PDLTValueError, match="scale-invariant"):
        pdlt.theory.resnet_fluctuation(1.0, L=4, activation="tanh", C_W=1.0)
    with pytest.raises(pdlt.PDLTValueError, match="activation"):
        pdlt.theory.resnet_ensemble(jax.random.key(0), X1, n=4, L=2, n_nets=2, activation="tahn", C_W=1.0)


# ----------------------------------------------------------------- non-iid weights
@pytest.mark.parametrize("shape", [(16, 16), (24, 8), (8, 24), (5, 1)])
def test_orthogonal_is_orthogonal(shape):
    n_out, n_in = shape
    W = np.asarray(pdlt.ensembles.sample_weights(jax.random.key(1), pdlt.ensembles.weight_sampler("orthogonal"), n_out, n_in, C_W=2.0))
    c = np.sqrt(2.0 * max(n_out, n_in) / n_in)
    Q = W / c
    G = Q.T @ Q if n_out >= n_in else Q @ Q.T
    np.testing.assert_allclose(G, np.eye(min(shape)), atol=1e-12)


def test_orthogonal_is_haar():
    """E[Q_11^2] = 1/n and E[Q_11^4] = 3/(n(n+2)) for Haar Q; a control with a wrong moment."""
    n, M = 6, 20000
    keys = jax.random.split(jax.random.key(3), M)
    q = np.asarray(jax.vmap(lambda k: pdlt.ensembles.sample_weights(k, pdlt.ensembles.weight_sampler("orthogonal"), n, n, C_W=1.0)[0, 0])(keys))
    m4, s4 = pdlt.mean_and_se(q**4)
    assert abs(float(m4) - 3 / (n * (n + 2))) < Z * float(s4)
    assert abs(float(m4) - 3 / n**2) > Z * float(s4)  # Gaussian value, rejected


def test_low_rank_rank_and_variance():
    s = pdlt.ensembles.weight_sampler("low_rank", rank_fraction=0.25)
    W = np.asarray(pdlt.ensembles.sample_weights(jax.random.key(4), s, 32, 64, C_W=1.5))
    assert np.linalg.matrix_rank(W) == 8
    s2 = pdlt.ensembles.weight_sampler("low_rank", rank=3)
    assert np.linalg.matrix_rank(np.asarray(pdlt.ensembles.sample_weights(jax.random.key(5), s2, 32, 64, C_W=1.0))) == 3
    for smp in (s, pdlt.ensembles.weight_sampler("sparse", density=0.2)):
        Ws = np.stack([np.asarray(pdlt.ensembles.sample_weights(jax.random.key(10 + i), smp, 32, 64, C_W=1.5)) for i in range(20)])
        m, se = pdlt.mean_and_se((Ws**2).reshape(20, -1).mean(1))
        assert abs(float(m) - 1.5 / 64) < Z * float(se)
        assert abs(float(m) - 1.5 / 32) > Z * float(se)  # control: wrong fan


def test_sparse_density():
    W = np.asarray(pdlt.ensembles.sample_weights(jax.random.key(6), pdlt.ensembles.weight_sampler("sparse", density=0.3), 200, 200, C_W=1.0))
    frac = (W != 0).mean()
    assert abs(frac - 0.3) < Z * np.sqrt(0.3 * 0.7 / 40000)


def test_orthogonal_conditional_sampler_matches_explicit_and_exact_relu():
    n, L, M = 8, 4, 3000
    s = pdlt.ensembles.weight_sampler("orthogonal")
    Gc = np.asarray(pdlt.ensembles.weights_ensemble_metrics(jax.random.key(7), X1, widths=[n] * L, sampler=s, C_W=2.0, activation="relu",
                                                  n_nets=M, method="conditional", chunk=M))[:, -1, 0, 0]
    Ge = np.asarray(pdlt.ensembles.weights_ensemble_metrics(jax.random.key(8), X1, widths=[n] * L, sampler=s, C_W=2.0, activation="relu",
                                                  n_nets=M, chunk=M))[:, -1, 0, 0]
    for G in (Gc, Ge):
        v, se = pdlt.variance_and_se(G / 2.0)  # G^(1) = C_W |x|^2/n0 = 2
        assert abs(float(v) - pdlt.ensembles.relu_orthogonal_exact(n, L)[-1]) < Z * float(se)
        assert abs(float(v) - pdlt.ensembles.relu_gaussian_exact(n,
                                                                 L)[-1]) > Z * float(se)  # control


def test_vertex_recursion_relu_slopes():
    K, V = pdlt.ensembles.weights_vertex_recursion(2.0, L=6, C_W=2.0, activation="relu",
                                                   weights="gaussian")
    np.testing.assert_allclose(V / K**2, 5 * np.arange(6), atol=1e-9)
    K, V = pdlt.ensembles.weights_vertex_recursion(2.0, L=6, C_W=2.0, activation="relu",
                                                   weights="orthogonal")
    np.testing.assert_allclose(V / K**2, 3 * np.arange(6), atol=1e-9)


def test_weights_validation():
    with pytest.raises(pdlt.PDLTValueError, match="kind"):
        pdlt.ensembles.weight_sampler("haar")
    with pytest.raises(pdlt.PDLTValueError, match="density"):
        pdlt.ensembles.weight_sampler("sparse", density=0.0)
    with pytest.raises(pdlt.PDLTValueError, match="C_b"):
        pdlt.ensembles.weights_vertex_recursion(1.0, L=3, C_W=1.0, C_b=0.1, weights="orthogonal")
    with pytest.raises(pdlt.PDLTValueError, match="conditional"):
        pdlt.ensembles.weights_ensemble_metrics(jax.random.key(0), X1, widths=[8, 8], sampler=pdlt.ensembles.weight_sampler("sparse"),
                                      n_nets=2, method="conditional", C_W=1.0)


# ----------------------------------------------------------------- parametrizations
def test_parametrization_scalings():
    for n in (32, 128):
        sp = pdlt.learning.parametrization("SP", n0=4, n=n, base_width=32)
        ntk = pdlt.learning.parametrization("NTK", n0=4, n=n, base_width=32)
        mup = pdlt.learning.parametrization("muP", n0=4, n=n, base_width=32)
        assert sp.var == pytest.approx((1 / 4, 1 / n, 1 / n)) and sp.lr == (1.0, 1.0, 1.0)
        assert ntk.lr == pytest.approx((8.0, 32 / n, 32 / n))
        assert mup.var == pytest.approx((1 / 4, 1 / n, 32 / n**2))
        assert mup.lr == pytest.approx((n / 32, 1.0, 32 / n))
    # at the base width muP is SP
    assert pdlt.learning.parametrization("muP", n0=4, n=32, base_width=32)[5:] == pdlt.learning.parametrization("SP", n0=4, n=32, base_width=32)[5:]
    d = pdlt.learning.parametrization("depth-muP", n0=4, n=32, hidden=16)
    assert d.residual and d.branch == pytest.approx(0.25)


def test_parametrization_validation():
    with pytest.raises(pdlt.PDLTValueError, match="name"):
        pdlt.learning.parametrization("mup", n0=4, n=8)
    with pytest.raises(pdlt.PDLTValueError, match="n"):
        pdlt.learning.parametrization("SP", n0=4, n=0)
    with pytest.raises(pdlt.PDLTValueError, match="etas"):
        pdlt.learning.train_losses(jax.random.key(0), pdlt.learning.parametrization("SP", n0=2, n=4), np.ones((3, 2)), np.ones((3, 1)),
                          etas=[-1.0], steps=2)


def test_coordinate_check_slopes():
    """muP features move Theta(1), NTK as n^-1/2 after one step (16 seeds, widths 64 and 256)."""
    x, y = pdlt.learning.teacher_data(jax.random.key(1), 16, 4)
    out = {}
    for name in ("muP", "NTK"):
        r = []
        for n in (64, 256):
            p = pdlt.learning.parametrization(name, n0=4, n=n, base_width=32)
            d = np.log(np.asarray(pdlt.learning.feature_change(jax.random.key(2), p, x, y, eta=0.05, n_seeds=16))[:, -3])
            r.append((d.mean(), d.std(ddof=1) / 4))
        s = (r[1][0] - r[0][0]) / np.log(4)
        se = np.hypot(r[0][1], r[1][1]) / np.log(4)
        out[name] = (s, se)
    assert abs(out["muP"][0]) < Z * out["muP"][1] + 0.1
    assert abs(out["NTK"][0] + 0.5) < Z * out["NTK"][1] + 0.1
    assert abs(out["NTK"][0]) > Z * out["NTK"][1] + 0.1  # control: NTK is not width-independent
