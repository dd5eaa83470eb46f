"""Tests of the NTK library (chapters 7-9): recursions, closed forms, learning-rate scalings, ensembles."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt

jax.config.update("jax_enable_x64", True)

X1 = jnp.ones(4)  # one input with |x|^2/n0 = 1


# ----------------------------------------------------------------- recursions and closed forms
@pytest.mark.parametrize("act", ["relu", "linear", "leaky_relu"])
@pytest.mark.parametrize("lam", [(1.0, 1.0), (0.3, 2.0), (1.0, 0.0)])
def test_scale_invariant_closed_form_matches_recursion(act, lam):
    """The summed closed forms of §9.2 against the general leading-order recursion, layer by layer."""
    C_b, C_W = pdlt.theory.ntk_critical_init(act)
    L = 40
    rec = pdlt.ntk_fluctuations(X1, C_b=C_b, C_W=C_W, L=L, activation=act, lambda_b=lam[0], lambda_W=lam[1])
    K = float(rec.K[0])
    closed = pdlt.theory.scale_invariant_ntk_closed_form(jnp.arange(1, L + 1), K=K, activation=act,
                                                  lambda_b=lam[0], lambda_W=lam[1])
    np.testing.assert_allclose(rec.K, K, rtol=1e-12)
    for q in "HABDF":
        np.testing.assert_allclose(getattr(rec, q), closed[q], rtol=1e-10, atol=1e-10 * float(jnp.max(jnp.abs(closed["B"]))))


def test_relu_relative_variance_slope():
    """Var(H)/H^2 -> (l/3n)(5 + rho + 5 rho^2) for ReLU (leading order, deep)."""
    for lb, lw in [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)]:
        sl = pdlt.theory.scale_invariant_ntk_slopes(K=2.0, lambda_b=lb, lambda_W=lw)
        rho = sl["rho"]
        assert sl["var_H"] == pytest.approx((5 + rho + 5 * rho**2) / 3, rel=1e-14)
        l = 20000
        c = pdlt.theory.scale_invariant_ntk_closed_form(l, K=2.0, lambda_b=lb, lambda_W=lw)
        assert float((c["A"] + 2 * c["B"]) / (c["H"] ** 2 * l)) == pytest.approx(sl["var_H"], rel=5 / l)
    assert pdlt.theory.scale_invariant_ntk_slopes(K=2.0, lambda_b=1.0, lambda_W=0.0)["var_H"] == pytest.approx(5 / 3)
    assert pdlt.theory.scale_invariant_ntk_slopes(K=2.0, lambda_b=0.0, lambda_W=1.0)["var_H"] == pytest.approx(11 / 3)


def test_relu_exact_recursion_reduces_to_leading_order():
    lo = pdlt.ntk_fluctuations(X1, C_b=0.0, C_W=2.0, L=8, activation="relu", lambda_b=0.5, lambda_W=1.5)
    big = pdlt.theory.relu_ntk_fluctuations_exact(X1, n=10**9, L=8, lambda_b=0.5, lambda_W=1.5)
    small = pdlt.theory.relu_ntk_fluctuations_exact(X1, n=16, L=8, lambda_b=0.5, lambda_W=1.5)
    for q in "VHABDF":
        np.testing.assert_allclose(getattr(big, q), getattr(lo, q), rtol=1e-6)
    for q in "VABDF":  # at n=16 the 1/n terms are large: the exact recursion is not the leading order
        assert float(getattr(small, q)[-1]) > 1.2 * float(getattr(lo, q)[-1])


def test_relu_exact_vertex_and_mean():
    """V = n[(1+5/n)^(l-1) - 1] G^2 and H = l (lambda_b + lambda_W G/2) at any width."""
    n, L = 10, 7
    ex = pdlt.theory.relu_ntk_fluctuations_exact(X1, n=n, L=L, lambda_b=0.7, lambda_W=1.3)
    ell = np.arange(1, L + 1)
    G = 2.0
    np.testing.assert_allclose(ex.V, n * ((1 + 5 / n) ** (ell - 1) - 1) * G**2, rtol=1e-12)
    np.testing.assert_allclose(ex.H, ell * (0.7 + 1.3 * G / 2), rtol=1e-12)


def test_single_input_moments_susceptibilities():
    m = pdlt.theory.single_input_moments("relu", 1.7, 2.0)
    assert float(m["chi_par"]) == pytest.approx(1.0, rel=1e-12)
    assert float(m["chi_perp"]) == pytest.approx(1.0, rel=1e-12)
    assert abs(float(m["h"])) < 1e-12
    # the two forms of chi_par (Stein): C_W/(2K^2) <s^2 (z^2-K)> = C_W <z s s'>/K
    K = 0.7
    act = pdlt.get_activation("tanh")
    m = pdlt.theory.single_input_moments("tanh", K, 1.0)
    other = pdlt.gaussian_expectation(lambda z: z * act.sigma(z) * act.dsigma(z), K) / K
    assert float(m["chi_par"]) == pytest.approx(float(other), rel=1e-10)
    # small-K expansions of the K*=0 class: chi_par = 1 + 2 a1 K, chi_perp = 1 + b1 K (tanh: a1 = b1 = -2)
    K = 1e-3
    m = pdlt.theory.single_input_moments("tanh", K, 1.0)
    assert float(m["chi_par"]) == pytest.approx(1 - 4 * K, abs=50 * K**2)
    assert float(m["chi_perp"]) == pytest.approx(1 - 2 * K, abs=50 * K**2)


def test_perpendicular_exponent_and_critical_init():
    assert pdlt.theory.perpendicular_exponent("tanh") == pytest.approx(1.0, rel=1e-10)
    assert pdlt.theory.perpendicular_exponent("sin") == pytest.approx(1.0, rel=1e-10)
    assert pdlt.theory.ntk_critical_init("relu") == (0.0, 2.0)
    assert pdlt.theory.ntk_critical_init("tanh") == (0.0, 1.0)
    assert pdlt.theory.kstar0_asymptotic_ntk("tanh", lambda_b_tilde=1.0, lambda_W_tilde=1.0) == pytest.approx(1.5)
    assert pdlt.theory.kstar0_asymptotic_ntk("sin", lambda_b_tilde=0.0, lambda_W_tilde=1.0) == pytest.approx(1.0)


# ----------------------------------------------------------------- learning-rate equivalence
@pytest.mark.parametrize("L", [1, 3, 10, 50])
def test_relu_learning_rate_equivalence_exact(L):
    lb, lw = pdlt.theory.equivalent_learning_rates(L, "relu", lambda_b_tilde=0.8,
                                                   lambda_W_tilde=1.4)
    for n in (8, 10**6):
        ex = pdlt.theory.relu_ntk_fluctuations_exact(X1, n=n, L=L, lambda_b=lb, lambda_W=lw)
        assert float(ex.H[-1]) == pytest.approx(0.8 + 1.4 * 2.0 / 2, rel=1e-12)


def test_relu_mean_ntk_off_criticality_closed_form():
    for cw in (1.7, 2.0, 2.3):
        rec = pdlt.ntk_fluctuations(X1, C_b=0.0, C_W=cw, L=30, activation="relu", lambda_b=0.6, lambda_W=1.1)
        closed = pdlt.theory.scale_invariant_mean_ntk(jnp.arange(1, 31), C_W=cw, g0=1.0, lambda_b=0.6, lambda_W=1.1)
        np.testing.assert_allclose(rec.H, closed, rtol=1e-11)


@pytest.mark.parametrize("tau_pair", [(1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
def test_tanh_equivalence_limit_and_slopes(tau_pair):
    """Deep tanh with the K*=0 rates: Theta -> lb~ + lW~/2 and the normalized A, B, D, F slopes (§9.3)."""
    tb, tw = tau_pair
    L = 4000
    lb, lw = pdlt.theory.equivalent_learning_rates(L, "tanh", lambda_b_tilde=tb, lambda_W_tilde=tw)
    s = pdlt.ntk_fluctuations(X1, C_b=0.0, C_W=1.0, L=L, activation="tanh", lambda_b=lb, lambda_W=lw)
    ts = pdlt.theory.kstar0_asymptotic_ntk("tanh", lambda_b_tilde=tb, lambda_W_tilde=tw)
    budget = 10 * np.log(L) / L
    K, H = float(s.K[-1]), float(s.H[-1])
    assert H == pytest.approx(ts, rel=budget)
    sl = pdlt.theory.kstar0_ntk_slopes(tb / ts)
    assert float(s.F[-1]) / (K * H * L) == pytest.approx(sl["F"], rel=budget)
    assert float(s.B[-1]) / (H * H * L) == pytest.approx(sl["B"], rel=budget)
    assert float(s.D[-1]) / (K * H * L) == pytest.approx(sl["D"], abs=budget)
    assert float(s.A[-1]) / (H * H * L) == pytest.approx(sl["A"], abs=budget)
    if tb > 0:  # negative control: constant bias rates make the tanh NTK grow without bound
        flat = pdlt.ntk_fluctuations(X1, C_b=0.0, C_W=1.0, L=L, activation="tanh", lambda_b=tb, lambda_W=tw)
        assert not float(flat.H[-1]) == pytest.approx(ts, rel=budget)


# ----------------------------------------------------------------- validation before compute
@pytest.mark.parametrize("call, name", [
    (lambda: pdlt.ntk_fluctuations(X1, C_b=0.0, C_W=2.0, L=3, lambda_b=(1.0, 1.0)), "lambda_b"),
    (lambda: pdlt.ntk_fluctuations(X1, C_b=0.0, C_W=2.0, L=3, lambda_W=-1.0), "lambda_W"),
    (lambda: pdlt.ntk_fluctuations(X1, C_b=0.0, C_W=2.0, L=0), "L"),
    (lambda: pdlt.ntk_fluctuations(X1, C_b=0.0, C_W=-1.0, L=2), "C_W"),
    (lambda: pdlt.ntk_fluctuations(jnp.ones((2, 3)), C_b=0.0, C_W=2.0, L=2), "x"),
    (lambda: pdlt.theory.relu_ntk_fluctuations_exact(X1, n=0, L=3), "n"),
    (lambda: pdlt.theory.relu_ntk_fluctuations_exact(X1, n=8, L=3, lambda_W=(1.0, 2.0, 3.0, 4.0)), "lambda_W"),
    (lambda: pdlt.theory.equivalent_learning_rates(0, "relu"), "L"),
    (lambda: pdlt.theory.equivalent_learning_rates(4, "relu", lambda_b_tilde=-1.0),
     "lambda_b_tilde"),
    (lambda: pdlt.theory.equivalent_learning_rates(4, "sigmoid"), "sigmoid"),
    (lambda: pdlt.ensemble_ntk(jax.random.key(0), jnp.ones((2, 3)), widths=(4, 2), C_b=0.0, C_W=2.0,
                               lambda_b=(1.0,), n_nets=2), "lambda_b"),
    (lambda: pdlt.ensemble_ntk(jax.random.key(0), jnp.ones((2, 3)), widths=(4, 0), C_b=0.0, C_W=2.0, n_nets=2), "widths"),
    (lambda: pdlt.ensembles.ntk_conditional_samples(jax.random.key(0), X1, n=4, L=3, C_b=0.0,
                                                    C_W=2.0,
                                          lambda_W=(1.0, -1.0, 1.0), n_nets=2), "lambda_W"),
    (lambda: pdlt.ensembles.ntk_conditional_samples(jax.random.key(0), X1, n=4, L=3, C_b=0.0, C_W=2.0, n_nets=0), "n_nets"),
    (lambda: pdlt.theory.scale_invariant_ntk_closed_form(3, K=1.0, activation="tanh"),
     "activation"),
    (lambda: pdlt.learning.function_space_step(pdlt.ensembles.init_mlp(jax.random.key(0), 3, (4,
            2), C_W=1.0), jnp.ones((2, 3)),
                                      jnp.zeros((2, 2)), eta=0.0), "eta"),
])
def test_bad_input_raises_naming_the_argument(call, name):
    with pytest.raises(pdlt.PDLTValueError, match=name):
        call()


# ----------------------------------------------------------------- networks: identities
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_forward_equation_matches_backward_sweep(act):
    x = jax.random.normal(jax.random.key(3), (3, 5))
    params = pdlt.ensembles.init_mlp(jax.random.key(4), 5, (7, 6, 8, 3), C_b=0.1, C_W=1.5)
    lb, lw = (0.5, 1.0, 2.0, 0.7), (1.2, 0.3, 1.0, 2.0)
    fwd = pdlt.learning.empirical_ntk_forward(params, x, act, lambda_b=lb, lambda_W=lw)
    bwd = pdlt.empirical_ntk(params, x, act, lambda_b=lb, lambda_W=lw)
    np.testing.assert_allclose(fwd[-1], bwd, rtol=1e-10, atol=1e-12)
    assert [h.shape for h in fwd] == [(7, 7, 3, 3), (6, 6, 3, 3), (8, 8, 3, 3), (3, 3, 3, 3)]


def test_ensemble_ntk_is_vmap_of_single_networks_and_chunk_invariant():
    key, x = jax.random.key(7), jax.random.normal(jax.random.key(8), (2, 3))
    kw = dict(widths=(6, 2), C_b=0.0, C_W=1.0, activation="tanh", lambda_b=0.5, lambda_W=1.5, n_nets=4)
    H, z = pdlt.ensemble_ntk(key, x, chunk=3, **kw)
    H2, _ = pdlt.ensemble_ntk(key, x, chunk=4, **kw)
    np.testing.assert_array_equal(H, H2)
    for i in (0, 3):
        p = pdlt.ensembles.init_mlp(jax.random.fold_in(key, i), 3, (6, 2), C_b=0.0, C_W=1.0)
        np.testing.assert_allclose(H[i], pdlt.empirical_ntk(p, x, "tanh", lambda_b=0.5, lambda_W=1.5), rtol=1e-12)
        np.testing.assert_allclose(z[i], pdlt.ensembles.mlp_apply(p, x, "tanh"), rtol=1e-12)
    per, _ = pdlt.ensemble_ntk(key, x, chunk=4, per_layer=True, **kw)
    assert per.shape == (4, 2, 2, 2, 2, 2)
    np.testing.assert_allclose(per.sum(axis=1), H, rtol=1e-12)


def test_conditional_samples_chunk_invariant_and_first_layer():
    kw = dict(n=6, L=3, C_b=0.2, C_W=1.0, activation="tanh", lambda_b=0.5, lambda_W=1.5, n_nets=5)
    a = pdlt.ensembles.ntk_conditional_samples(jax.random.key(1), X1, chunk=3, **kw)
    b = pdlt.ensembles.ntk_conditional_samples(jax.random.key(1), X1, chunk=5, **kw)
    for k in ("mu", "G", "b2", "f2"):
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].shape == (5, 3)
    np.testing.assert_allclose(a["mu"][:, 0], 0.5 + 1.5)
    np.testing.assert_allclose(a["G"][:, 0], 0.2 + 1.0)
    np.testing.assert_allclose(a["b2"][:, 0], 0.0)


def test_function_space_step_is_first_order():
    """Δz + η Ĥ ε = O(η²): halving η quarters the remainder (to within 5 %)."""
    params = pdlt.ensembles.init_mlp(jax.random.key(2), 4, (16, 3), C_b=0.0, C_W=1.0)
    x = jax.random.normal(jax.random.key(5), (3, 4))
    y = jax.random.normal(jax.random.key(6), (3, 3))
    r = []
    for eta in (1e-3, 5e-4):
        dz, dz_ntk = pdlt.learning.function_space_step(params, x, y, eta=eta, activation="tanh")
        r.append(float(jnp.linalg.norm(dz - dz_ntk)))
        assert float(jnp.linalg.norm(dz - dz_ntk)) < 0.05 * float(jnp.linalg.norm(dz_ntk))
    assert r[0] / r[1] == pytest.approx(4.0, rel=0.05)


# ----------------------------------------------------------------- Monte Carlo vs exact (fixed seeds, 4.5 sigma)
def test_relu_ensemble_matches_exact_recursion_with_control():
    n, L = 8, 4
    s = pdlt.ensembles.ntk_conditional_samples(jax.random.key(11), X1, n=n, L=L, C_b=0.0, C_W=2.0, activation="relu",
                                     lambda_b=1.0, lambda_W=1.0, n_nets=6000, progress=False)
    est = pdlt.ensembles.ntk_fluctuation_estimates(s)
    ex = pdlt.theory.relu_ntk_fluctuations_exact(X1, n=n, L=L)
    lo = pdlt.ntk_fluctuations(X1, C_b=0.0, C_W=2.0, L=L, activation="relu")
    for q in "HVABDF":
        m, se = (np.asarray(v) for v in est[q])
        th = np.asarray(getattr(ex, q))
        assert np.all(np.abs(m - th) <= 4.5 * se + 1e-12), (q, m, th, se)
    m, se = (np.asarray(v) for v in est["B"])  # control: the leading order is rejected at this width
    assert abs(m[-1] - float(lo.B[-1])) > 4.5 * se[-1]
    r, rse = pdlt.ensembles.relative_ntk_variance_estimate(s)
    rex = pdlt.theory.relative_ntk_variance(ex, n)
    assert np.all(np.abs(np.asarray(r - rex)) <= 4.5 * np.asarray(rse) + 1e-12)


@pytest.mark.slow
def test_tanh_ensembles_extrapolate_to_leading_order():
    """tanh at criticality: n x (co)variances at n = 24, 48, 96, fitted a + b/n, intercept within 4.5 SE of the
    leading-order recursion at layer 4; control: the narrowest width alone is rejected for B."""
    L, ns, S = 4, (24, 48, 96), (8000, 4000, 2000)
    lo = pdlt.ntk_fluctuations(X1, C_b=0.0, C_W=1.0, L=L, activation="tanh")
    est = {n: pdlt.ensembles.ntk_fluctuation_estimates(pdlt.ensembles.ntk_conditional_samples(
        jax.random.key(100 + n), X1, n=n, L=L, C_b=0.0, C_W=1.0, activation="tanh", n_nets=s, progress=False))
        for n, s in zip(ns, S)}
    for q in "VABDF":
        m = np.array([float(est[n][q][0][-1]) for n in ns])
        se = np.array([float(est[n][q][1][-1]) for n in ns])
        (a, _), (sa, _) = pdlt.stats.fit_line(1.0 / np.array(ns), m, se)
        assert abs(a - float(getattr(lo, q)[-1])) <= 4.5 * sa, (q, a, sa, float(getattr(lo, q)[-1]))
    m, se = est[ns[0]]["B"]
    assert abs(float(m[-1]) - float(lo.B[-1])) > 4.5 * float(se[-1])
