"""Appendix B: residual MLPs -- recursions, criticality, sampler, NTK."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import Z

import pdlt

TANH = dict(C_b=0.0, C_W=1.0, activation="tanh")
RELU = dict(C_b=0.0, C_W=2.0, activation="relu")


def crit(g2):
    return dict(xi=float(np.sqrt(1 - g2)), gamma=float(np.sqrt(g2)))


# ----------------------------------------------------------------- recursions: identities and limits
def test_plain_limit_matches_kernel_recursion():
    K = pdlt.theory.residual_kernel_recursion(0.8, xi=0.0, gamma=1.0, L=12, **TANH)
    ref = pdlt.kernel_recursion(0.8, C_b=0.0, C_W=1.0, L=12, activation="tanh")
    np.testing.assert_allclose(K, ref, rtol=1e-10)


@pytest.mark.parametrize("setup", [TANH, RELU])
def test_closures_agree_without_skip(setup):
    Kf, Vf = pdlt.theory.residual_vertex_recursion(1.3, xi=0.0, gamma=1.0, L=8, **setup)
    Ks, Vs = pdlt.theory.residual_vertex_recursion(1.3, xi=0.0, gamma=1.0, L=8, closure="scale",
                                                   **setup)
    np.testing.assert_allclose(Kf, Ks, rtol=1e-9)  # two different quadratures
    np.testing.assert_allclose(Vf, Vs, rtol=1e-8, atol=1e-14)


def test_plain_relu_vertex_exact_leading_order():
    K, V = pdlt.theory.residual_vertex_recursion(2.0, xi=0.0, gamma=1.0, L=9, **RELU)
    np.testing.assert_allclose(V / K**2, 5.0 * np.arange(9), rtol=1e-10, atol=1e-12)


def test_linear_activation_closures_agree_with_skip():
    lin = dict(C_b=0.0, C_W=1.0, activation="linear")
    _, Vf = pdlt.theory.residual_vertex_recursion(1.0, **crit(0.3), L=7, **lin)
    _, Vs = pdlt.theory.residual_vertex_recursion(1.0, **crit(0.3), L=7, closure="scale", **lin)
    np.testing.assert_allclose(Vf, Vs, rtol=1e-10, atol=1e-14)


def test_full_closure_degree_converged():
    _, V24 = pdlt.theory.residual_vertex_recursion(2.0, **crit(0.25), L=10, **RELU)
    _, V40 = pdlt.theory.residual_vertex_recursion(2.0, **crit(0.25), L=10, degree=40, **RELU)
    np.testing.assert_allclose(V24, V40, rtol=1e-5)


@pytest.mark.parametrize("g2", [0.5, 0.25, 0.1])
def test_criticality_and_tanh_slope(g2):
    assert float(pdlt.theory.residual_chi(2.0, **crit(g2), C_W=2.0, activation="relu")) == pytest.approx(1.0, rel=1e-12)
    K = pdlt.theory.residual_kernel_recursion(2.0, **crit(g2), L=5, **RELU)
    np.testing.assert_allclose(K, 2.0, rtol=1e-12)
    K, V = pdlt.theory.residual_vertex_recursion(1.0, **crit(g2), L=3001, **TANH)
    v = np.asarray(V / K**2)
    slope = (v[-1] - v[1500]) / 1500
    nu = pdlt.theory.residual_nu(np.sqrt(g2), activation="tanh")
    assert nu == pytest.approx(4 / 3 * g2 * (1 - g2 / 2), rel=1e-14)
    assert slope == pytest.approx(nu, rel=1e-2)
    assert slope != pytest.approx(2 / 3 * g2**2, rel=1e-2)  # control: a gamma^4 law is rejected


def test_relu_nu_and_effective_aspect_ratio():
    assert pdlt.theory.residual_nu(1.0, activation="relu") == pytest.approx(5.0, rel=1e-3)
    assert pdlt.theory.residual_nu(1.0, activation="relu", closure="scale") == pytest.approx(5.0, rel=1e-14)
    assert pdlt.theory.effective_aspect_ratio(0.3, 1.0, activation="tanh") == pytest.approx(0.3,
            rel=1e-14)
    r1 = pdlt.theory.residual_nu(np.sqrt(0.1), activation="relu") / 0.1
    r2 = pdlt.theory.residual_nu(np.sqrt(0.05), activation="relu") / 0.05
    assert r1 == pytest.approx(r2, rel=0.05)  # nu ~ gamma^2 at small gamma


def test_ntk_plain_limit():
    x = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.4]])
    K, H = pdlt.theory.residual_ntk_recursion(x, xi=0.0, gamma=1.0, L=5, C_b=0.1, C_W=1.5, activation="tanh",
                                       lambda_b=0.7, lambda_W=1.3)
    K2, T2 = pdlt.ntk_recursion(x, C_b=0.1, C_W=1.5, L=5, activation="tanh", lambda_b=0.7, lambda_W=1.3)
    np.testing.assert_allclose(K, K2, rtol=1e-10)
    np.testing.assert_allclose(H, T2, rtol=1e-10)


# ----------------------------------------------------------------- sampler
def test_sampler_same_seed_same_numbers_and_chunking():
    key = jax.random.key(1)
    a = pdlt.theory.residual_ensemble(key, jnp.ones(3), n=8, L=4, **crit(0.5), **TANH, n_nets=50,
                                      chunk=16)
    b = pdlt.theory.residual_ensemble(key, jnp.ones(3), n=8, L=4, **crit(0.5), **TANH, n_nets=50,
                                      chunk=50)
    c = pdlt.theory.residual_ensemble(key, jnp.ones(3), n=8, L=4, **crit(0.5), **TANH, n_nets=50,
                                      chunk=16)
    for u, v, w in zip(a, b, c):
        np.testing.assert_array_equal(u, w)                          # same seed and chunking: same bits
        np.testing.assert_allclose(u, v, rtol=1e-14, atol=1e-15)     # other chunking: same up to rounding


def test_conditional_matches_explicit():
    key = jax.random.key(2)
    kw = dict(n=12, L=4, **crit(0.5), **RELU, n_nets=4000)
    Pc, Qc, _ = pdlt.theory.residual_ensemble(jax.random.fold_in(key, 0), jnp.ones(4), method="conditional", **kw)
    Pe, Qe, _ = pdlt.theory.residual_ensemble(jax.random.fold_in(key, 1), jnp.ones(4), method="explicit", **kw)
    vc, sc = pdlt.theory.vertex_from_pairs(Pc, Qc, 12)
    ve, se = pdlt.theory.vertex_from_pairs(Pe, Qe, 12)
    assert abs(float(vc[-1] - ve[-1])) <= Z * float(np.hypot(sc[-1], se[-1]))
    (mc, smc), (me, sme) = pdlt.mean_and_se(Pc[:, -1]), pdlt.mean_and_se(Pe[:, -1])
    assert abs(float(mc - me)) <= Z * float(np.hypot(smc, sme))


def test_relu_vertex_against_full_recursion():
    """n -> infinity extrapolation of the ensembles against the full closure; the scale closure is rejected."""
    L, g2 = 5, 0.25
    ys, ses, widths = [], [], (64, 128, 256)
    for n in widths:
        P, Q, _ = pdlt.theory.residual_ensemble(jax.random.fold_in(jax.random.key(7), n), jnp.ones(4), n=n, L=L, **crit(g2),
                                         **RELU, n_nets=8000)
        v, se = pdlt.theory.vertex_from_pairs(P, Q, n)
        ys.append(float(v[-1]))
        ses.append(float(se[-1]))
    (a, _), (sa, _) = pdlt.stats.fit_line(1 / np.array(widths), ys, ses)
    K, V = pdlt.theory.residual_vertex_recursion(2.0, **crit(g2), L=L, **RELU)
    Ks, Vs = pdlt.theory.residual_vertex_recursion(2.0, **crit(g2), L=L, closure="scale", **RELU)
    assert abs(a - float(V[-1] / K[-1] ** 2)) <= Z * sa
    assert abs(a - float(Vs[-1] / Ks[-1] ** 2)) > Z * sa


def test_linear_ntk_mean_exact():
    """For a linear residual MLP the NTK mean is exact at any width: explicit gradients against the recursion."""
    n, L, n0, S = 10, 3, 3, 1500
    xi, gamma, lb, lw = 0.8, 0.6, 0.5, 1.5
    x = jnp.array([[0.7, -1.1, 0.4]])

    def theta(key):
        params = pdlt.theory.init_residual_mlp(key, n0, n, L, C_b=0.3, C_W=1.2)
        f = lambda p: pdlt.theory.residual_apply(p, x, xi=xi, gamma=gamma,
                                                 activation="linear")[-1][0]
        J = jax.jacrev(f)(params)
        tot = 0.0
        for (JW, Jb), (W, _) in zip(J, params):
            tot = tot + lb * jnp.sum(Jb**2, axis=1) + lw / W.shape[1] * jnp.sum(JW**2, axis=(1, 2))
        return jnp.mean(tot)

    th = jax.vmap(theta)(jax.random.split(jax.random.key(9), S))
    m, se = pdlt.mean_and_se(th)
    _, H = pdlt.theory.residual_ntk_recursion(np.asarray(x), xi=xi, gamma=gamma, C_b=0.3, C_W=1.2, L=L, activation="linear",
                                       lambda_b=lb, lambda_W=lw)
    assert abs(float(m) - float(H[-1, 0, 0])) <= Z * float(se)
    _, H0 = pdlt.theory.residual_ntk_recursion(np.asarray(x), xi=0.0, gamma=1.0, C_b=0.3, C_W=1.2, L=L, activation="linear",
                                        lambda_b=lb, lambda_W=lw)
    assert abs(float(m) - float(H0[-1, 0, 0])) > Z * float(se)  # control: the skip connection matters


# ----------------------------------------------------------------- validation
def test_bad_input_raises():
    with pytest.raises(pdlt.PDLTValueError, match="gamma"):
        pdlt.theory.residual_kernel_recursion(1.0, xi=0.5, gamma=0.0, L=3, **TANH)
    with pytest.raises(pdlt.PDLTValueError, match="closure"):
        pdlt.theory.residual_vertex_recursion(1.0, xi=0.5, gamma=0.5, L=3, closure="exact", **TANH)
    with pytest.raises(pdlt.PDLTValueError, match="`n`"):
        pdlt.theory.residual_ensemble(jax.random.key(0), jnp.ones(2), n=1, L=3, xi=0.5, gamma=0.5, n_nets=4, **TANH)
    with pytest.raises(pdlt.PDLTValueError, match="x"):
        pdlt.theory.residual_ensemble(jax.random.key(0), jnp.ones((2, 2)), n=4, L=3, xi=0.5, gamma=0.5, n_nets=4, **TANH)
    with pytest.raises(pdlt.PDLTValueError, match="gamma"):
        pdlt.theory.residual_critical_xi(1.5)
    with pytest.raises(pdlt.PDLTValueError, match="classes"):
        pdlt.theory.residual_nu(0.5, activation="sigmoid")


def test_resnet_and_residual_recursions_are_one_convention():
    """The large-depth ResNet of L blocks is the Appendix-B residual MLP of L + 1 layers with
    gamma = L^-alpha (one implementation, two counting conventions)."""
    import numpy as np

    import pdlt

    x = np.random.default_rng(1).normal(size=(3, 4))
    K0 = pdlt.theory.input_kernel(x, C_b=0.1, C_W=1.3)
    for act in ("relu", "tanh"):
        a = pdlt.theory.resnet_kernel_recursion(K0, L=6, alpha=0.5, C_W=1.7, C_b=0.05, activation=act, skip=0.9)
        b = pdlt.theory.residual_kernel_recursion(K0, xi=0.9, gamma=pdlt.theory.branch_multiplier(6, 0.5), C_b=0.05, C_W=1.7,
                                           L=7, activation=act)
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)
