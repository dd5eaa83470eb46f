"""Leading-order dNTK statistics P, Q (pdlt.theory.internals.dntk_stats) against closed forms and ensembles of networks."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt
from pdlt.learning import dntk_pq_estimates
from pdlt.theory.internals.dntk_stats import (deep_linear_dntk_closed_form, dntk_gaussian_moments,
                                              dntk_statistics,
                              dntk_statistics_single, scale_invariant_dntk_closed_form)

Z = 4.5


def _inputs(N, n0=4, seed=3):
    return jax.random.normal(jax.random.PRNGKey(seed), (N, n0))


def test_first_layer_zero_and_second_nonzero():
    st = dntk_statistics(_inputs(2), C_b=0.1, C_W=1.3, L=2, activation="tanh", lambda_b=0.5, lambda_W=1.0)
    assert float(jnp.max(jnp.abs(st.P[0]))) == 0.0 and float(jnp.max(jnp.abs(st.Q[0]))) == 0.0
    assert float(jnp.max(jnp.abs(st.Q[1]))) > 0.05 and float(jnp.max(jnp.abs(st.P[1]))) > 0.05


@pytest.mark.parametrize("activation,N", [("tanh", 3), ("gelu", 2), ("relu", 2)])
def test_P_symmetric_in_its_NTK_indices(activation, N):
    st = dntk_statistics(_inputs(N), C_b=0.0 if activation == "relu" else 0.2, C_W=2.0 if activation == "relu" else 1.1,
                         L=4, activation=activation, lambda_b=0.3, lambda_W=1.0)
    np.testing.assert_allclose(st.P, jnp.swapaxes(st.P, 2, 3), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(st.B, jnp.transpose(st.B, (0, 2, 1, 4, 3)), rtol=1e-9, atol=1e-12)


def test_deep_linear_closed_form():
    x = _inputs(3)
    st = dntk_statistics(x, C_b=0.0, C_W=1.0, L=5, activation="linear", lambda_b=0.4, lambda_W=0.7)
    for ell in range(1, 6):
        cf = deep_linear_dntk_closed_form(ell, K=st.K[0], lambda_b=0.4, lambda_W=0.7)
        np.testing.assert_allclose(st.P[ell - 1], cf["P"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(st.Q[ell - 1], cf["Q"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation,C_b,C_W", [("relu", 0.0, 2.0), ("tanh", 0.1, 1.2), ("gelu", 0.05, 1.5)])
def test_single_input_agrees_with_multi_input_and_ntk_fluctuations(activation, C_b, C_W):
    x = _inputs(1)
    st = dntk_statistics(x, C_b=C_b, C_W=C_W, L=5, activation=activation, lambda_b=0.5, lambda_W=1.0)
    s1 = dntk_statistics_single(x[0], C_b=C_b, C_W=C_W, L=5, activation=activation, lambda_b=0.5, lambda_W=1.0)
    for k in ("P", "Q", "F", "B"):
        np.testing.assert_allclose(getattr(st, k)[:, 0, 0, 0, 0], s1[k], rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_scale_invariant_closed_form_and_slope():
    x = _inputs(1)[0]
    L = 10_000
    s1 = dntk_statistics_single(x, C_b=0.0, C_W=2.0, L=L, activation="relu", lambda_b=0.2, lambda_W=1.0)
    K = float(s1["K"][0])
    cf = scale_invariant_dntk_closed_form(jnp.arange(1, L + 1), K=K, activation="relu", lambda_b=0.2, lambda_W=1.0)
    np.testing.assert_allclose(s1["P"], cf["P"], rtol=1e-9)
    np.testing.assert_allclose(s1["Q"], cf["Q"], rtol=1e-9)
    slope = float(s1["P"][-1] / s1["H"][-1] ** 2 / L)
    assert abs(slope - cf["slope_P"]) < 2.0 / L * cf["slope_P"]


def test_kinked_three_inputs_and_bad_arguments_raise():
    with pytest.raises(pdlt.PDLTValueError, match="N <= 2"):
        dntk_statistics(_inputs(3), C_b=0.0, C_W=2.0, L=2, activation="relu")
    with pytest.raises(pdlt.PDLTValueError, match="second derivative"):
        dntk_statistics(_inputs(2), C_b=0.0, C_W=2.0, L=2, activation="step")
    with pytest.raises(pdlt.PDLTValueError, match="kink"):
        dntk_statistics(_inputs(2), C_b=0.0, C_W=2.0, L=2, activation="relu", kink="midpoint")


def test_relu_delta_terms_vanish_for_one_input_not_for_two():
    m1 = dntk_gaussian_moments("relu", jnp.eye(1) * 1.3)
    assert float(jnp.max(jnp.abs(m1["T2"]))) == 0.0 and float(jnp.max(jnp.abs(m1["E2s"]))) == 0.0
    K = jnp.array([[1.0, 0.4], [0.4, 0.8]])
    m2 = dntk_gaussian_moments("relu", K)
    # <δ(z_0) σ(z_1)> = E[σ(z_1) | z_0 = 0] / sqrt(2π K_00), with z_1 | z_0=0 ~ N(0, K_11 - K_01²/K_00)
    s = np.sqrt(0.8 - 0.16)
    assert np.isclose(float(m2["E2s"][0, 1]), s / np.sqrt(2 * np.pi) / np.sqrt(2 * np.pi * 1.0), rtol=1e-12)
    assert float(jnp.max(jnp.abs(dntk_gaussian_moments("relu", K, kink="almost-everywhere")["E2s"]))) == 0.0


def test_relu_delta_rule_against_direct_integration():
    """<δ(z_0) σ'(z_0) σ(z_1)> and <z_1 σ'(z_1) δ(z_0)> by the delta rule against a direct line integral at z_0 = 0."""
    K = np.array([[1.0, 0.4], [0.4, 0.8]])
    m = dntk_gaussian_moments("relu", jnp.asarray(K))
    z1 = np.linspace(-12, 12, 200001)
    Ki = np.linalg.inv(K)
    dens = np.exp(-0.5 * Ki[1, 1] * z1**2) / (2 * np.pi * np.sqrt(np.linalg.det(K)))  # joint density at z_0 = 0
    relu = np.maximum(z1, 0.0)
    direct_T2 = 0.5 * np.trapezoid(dens * (z1 > 0) * relu, z1)
    assert np.isclose(float(m["T2"][0, 0, 1, 1]), direct_T2, rtol=1e-6)
    # D2[β, x, y] = Σ_γ K^-1_{βγ} <z_γ σ'_x σ''_y>: with x = 1, y = 0 the average is <z_1 σ'(z_1) δ(z_0)>
    zz = np.trapezoid(dens * z1 * (z1 > 0), z1)
    np.testing.assert_allclose(np.asarray(m["D2"][:, 1, 0]), np.linalg.inv(K)[:, 1] * zz, rtol=1e-6)


def _check_all(est, st_layer, nets_label):
    for k in ("P", "Q"):
        dev = (np.asarray(est[k]) - np.asarray(getattr(st_layer, k))) / np.asarray(est[k + "_se"])
        assert np.max(np.abs(dev)) < Z, f"{nets_label} {k}: max |dev| = {np.max(np.abs(dev)):.2f} SE"


@pytest.mark.slow
@pytest.mark.parametrize("activation,C_b,C_W,lb", [("relu", 0.0, 2.0, 0.5), ("tanh", 0.2, 1.1, 0.3)])
def test_second_layer_exact_at_any_width(activation, C_b, C_W, lb):
    """At L = 2 the layer-1 NTK is deterministic and diagonal: n E[dH z] equals the leading order at any n."""
    x = _inputs(2)
    st = dntk_statistics(x, C_b=C_b, C_W=C_W, L=2, activation=activation, lambda_b=lb, lambda_W=1.0,
                         kink="almost-everywhere")
    class Layer:  # noqa: D401 - layer-2 view
        P, Q = st.P[1], st.Q[1]
    est = dntk_pq_estimates(jax.random.PRNGKey(11), x, n=6, L=2, C_b=C_b, C_W=C_W, activation=activation,
                            lambda_b=lb, lambda_W=1.0, n_nets=4000, n_out=3, chunk=1000)
    _check_all(est, Layer, f"{activation} L=2 n=6")
    # power: the largest component is many SE from 0
    assert float(jnp.max(jnp.abs(st.P[1]) / est["P_se"])) > 10


def fit_intercepts(x, widths, L, n_nets, **kw):
    rows = [dntk_pq_estimates(jax.random.PRNGKey(100 + n), x, n=n, L=L, n_nets=n_nets, chunk=500, **kw) for n in widths]
    out = {}
    inv = 1.0 / np.asarray(widths, float)
    for k in ("P", "Q"):
        y = np.stack([np.asarray(r[k]) for r in rows]).reshape(len(widths), -1)
        s = np.stack([np.asarray(r[k + "_se"]) for r in rows]).reshape(len(widths), -1)
        a, sa = [], []
        for c in range(y.shape[1]):
            (a0, _), (sa0, _) = pdlt.stats.fit_line(inv, y[:, c], s[:, c])
            a.append(a0)
            sa.append(sa0)
        shape = rows[0][k].shape
        out[k], out[k + "_se"] = np.reshape(a, shape), np.reshape(sa, shape)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("activation,N,C_b,C_W,lb", [("relu", 2, 0.0, 2.0, 0.5), ("tanh", 3, 0.1, 1.0, 0.5),
                                                    ("gelu", 2, 0.1, 1.6, 0.5)])
def test_third_layer_intercept_against_recursion(activation, N, C_b, C_W, lb):
    x = _inputs(N)
    L = 3
    st = dntk_statistics(x, C_b=C_b, C_W=C_W, L=L, activation=activation, lambda_b=lb, lambda_W=1.0,
                         kink="almost-everywhere")
    fit = fit_intercepts(x, [16, 32, 64], L, 4000, C_b=C_b, C_W=C_W, activation=activation, lambda_b=lb, lambda_W=1.0)
    class Layer:
        P, Q = st.P[-1], st.Q[-1]
    _check_all(fit, Layer, f"{activation} L=3 intercept")


def test_F_B_agree_with_ntk_statistics():
    """The F, B used by the P, Q recursion against the independent multi-input NTK statistics module."""
    x = _inputs(2)
    st = dntk_statistics(x, C_b=0.1, C_W=1.2, L=4, activation="tanh", lambda_b=0.4, lambda_W=1.0)
    ref = pdlt.theory.ntk_statistics(x, C_b=0.1, C_W=1.2, L=4, activation="tanh", lambda_b=0.4, lambda_W=1.0)
    np.testing.assert_allclose(st.F, ref.F, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(st.B, ref.B, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(st.Theta, ref.Theta, rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("lambda_b", [0.0, 1.0])
def test_kstar0_slopes_against_recursion(lambda_b):
    """tanh at criticality: the normalized slopes at ℓ = 4000 against the class constants (approach O(log ℓ / ℓ))."""
    L = 4000
    s = dntk_statistics_single(jnp.full(4, 0.8), C_b=0.0, C_W=1.0, L=L, activation="tanh", lambda_b=lambda_b, lambda_W=1.0)
    cf = pdlt.theory.kstar0_dntk_slopes(lambda_b=lambda_b)
    for k in ("P", "Q"):
        r = float(s[k][-1] / s["H"][-1] ** 2 / L)
        r2 = float(s[k][L // 2 - 1] / s["H"][L // 2 - 1] ** 2 / (L // 2))
        assert abs(r - cf[k]) < 2 * abs(r - r2) + 1e-12, (k, r, r2, cf[k])


@pytest.mark.slow
def test_ddntk_samples_against_brute_force_derivatives_and_one_layer_zero():
    """ddI and ddII of one tanh network from jvp's against explicit Hessian / third-derivative tensors; a one-layer
    network (linear in its parameters) has both ddNTKs identically zero."""
    import jax.flatten_util
    from pdlt.learning.internals.dntk import _ddntk_one

    x = _inputs(2)
    lb, lw = (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)
    p = pdlt.ensembles.init_mlp(jax.random.PRNGKey(0), 4, (5, 5, 2), C_b=0.1, C_W=1.3)
    R, S, T, U = jax.jit(lambda q: _ddntk_one(q, x, "tanh", lb, lw))(p)
    flat, unravel = jax.flatten_util.ravel_pytree(p)
    lam = jax.flatten_util.ravel_pytree(tuple((jnp.full_like(W, lw[l] / W.shape[1]), jnp.full_like(b, lb[l]))
                                              for l, (W, b) in enumerate(p)))[0]
    f = lambda v: pdlt.ensembles.mlp_apply(unravel(v), x, "tanh")  # noqa: E731
    J = jax.jacrev(f)(flat)
    Hs = jax.jacfwd(jax.jacrev(f))(flat)
    T3 = jax.jacfwd(jax.jacfwd(jax.jacrev(f)))(flat)
    a, b, r = 0, 1, range(2)

    def dd2(i1, d1, i2, d2, i3, d3, i4, d4):
        return float(jnp.sum((Hs[d1, i1] @ (lam * J[d3, i3])) * lam * (Hs[d2, i2] @ (lam * J[d4, i4]))))

    Rb = np.array([[[[float(jnp.einsum("pqr,p,q,r->", T3[d0, a], lam * J[d1, a], lam * J[d2, b], lam * J[d3, b]))
                      for d3 in r] for d2 in r] for d1 in r] for d0 in r])
    Sb = np.array([[[[dd2(a, d1, a, d2, b, d3, b, d4) for d4 in r] for d3 in r] for d2 in r] for d1 in r])
    Tb = np.array([[[[dd2(a, d1, b, d2, a, d3, b, d4) for d4 in r] for d3 in r] for d2 in r] for d1 in r])
    Ub = np.array([[[[dd2(a, d1, b, d2, b, d3, a, d4) for d4 in r] for d3 in r] for d2 in r] for d1 in r])
    np.testing.assert_allclose(R, Rb, atol=1e-12)
    np.testing.assert_allclose(S, Sb, atol=1e-12)
    np.testing.assert_allclose(T, np.transpose(Tb, (0, 2, 3, 1)), atol=1e-12)
    np.testing.assert_allclose(U, np.transpose(Ub, (0, 3, 1, 2)), atol=1e-12)
    assert float(np.max(np.abs(Rb))) > 1e-3 and float(np.max(np.abs(Sb))) > 1e-3
    p1 = pdlt.ensembles.init_mlp(jax.random.PRNGKey(1), 4, (2,), C_b=0.1, C_W=1.3)
    for v in _ddntk_one(p1, x, "tanh", (0.5,), (1.0,)):
        assert float(jnp.max(jnp.abs(v))) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("activation,C_b,C_W", [("tanh", 0.1, 1.2), ("relu", 0.0, 2.0)])
def test_ddntk_second_layer_exact_at_any_width(activation, C_b, C_W):
    """R, S, T, U at depth two against ensembles of narrow networks (exact at any width; ReLU almost everywhere)."""
    from pdlt.theory import ddntk_second_layer

    x = _inputs(2)
    th = ddntk_second_layer(x, C_b=C_b, C_W=C_W, activation=activation, lambda_b=0.5, lambda_W=1.0)
    est = pdlt.learning.ddntk_mean_estimates(jax.random.PRNGKey(21), x, n=5, L=2, C_b=C_b, C_W=C_W, activation=activation,
                                    lambda_b=0.5, lambda_W=1.0, n_nets=3000, n_out=2, chunk=500)
    for k in "RSTU":
        se = np.asarray(est[k + "_se"])
        dev = (np.asarray(est[k]) - np.asarray(th[k])) / np.where(se > 0, se, 1.0)
        assert np.max(np.abs(dev)) < Z, (k, np.max(np.abs(dev)))
        if activation == "relu" and k in "RU":
            assert float(np.max(np.abs(np.asarray(est[k])))) < 1e-12
    assert float(np.max(np.abs(np.asarray(th["S"])) / np.asarray(est["S_se"]))) > 10


@pytest.mark.slow
def test_relu_delta_terms_are_the_averaged_motion_of_the_ntk():
    """ReLU, two inputs, depth two: the finite-difference motion of the NTK over an ensemble (which counts
    activation-pattern changes) follows the recursion with the δ(z) terms, and rejects the one without them."""
    x = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(0), 7), (2, 8))
    kw = dict(C_b=0.0, C_W=2.0, activation="relu", lambda_b=0.5, lambda_W=1.0)
    dist = dntk_statistics(x, L=2, kink="distributional", **kw).P[1]
    ae = dntk_statistics(x, L=2, kink="almost-everywhere", **kw).P[1]
    est = pdlt.learning.ntk_motion_pq_estimates(jax.random.PRNGKey(5), x, n=6, L=2, n_nets=120_000, n_out=2, eps=1e-2,
                                       chunk=5000, **kw)
    dev = (np.asarray(est["P"]) - np.asarray(dist)) / np.asarray(est["P_se"])
    assert np.max(np.abs(dev)) < Z
    c = np.unravel_index(np.argmax(np.abs(np.asarray(dist - ae))), dist.shape)
    assert abs(float(est["P"][c] - ae[c])) > Z * float(est["P_se"][c])


def _smoothed_R_moments(eps, a, K):
    """<σ'''_0 σ'^3_1> and <σ''_0 σ_1 σ'^2_1> for σ_ε(z) = a z + (1 - a) ε softplus(z/ε), by 2-D Gauss-Legendre
    quadrature (z_0 = ε t on the kink, z_1 given z_0 on three panels); independent of the library."""
    Kaa, Kab, Kbb = float(K[0, 0]), float(K[0, 1]), float(K[1, 1])
    rho, s = Kab / Kaa, np.sqrt(Kbb - Kab**2 / Kaa)
    g, w = np.polynomial.legendre.leggauss(200)

    def panel(lo, hi):
        return 0.5 * (hi - lo) * g + 0.5 * (hi + lo), 0.5 * (hi - lo) * w

    t, wt = panel(-40.0, 40.0)
    t, wt = np.concatenate([t, t]), np.concatenate([wt, wt]) / 2   # (same nodes twice: keeps shapes simple)
    za = eps * t
    pa = np.exp(-za**2 / (2 * Kaa)) / np.sqrt(2 * np.pi * Kaa)
    sg = 0.5 * (1 + np.tanh(t / 2))
    s1, s2 = sg * (1 - sg), sg * (1 - sg) * (1 - 2 * sg)
    zb, wb = map(np.concatenate, zip(*[panel(-12 * s, -40 * eps), panel(-40 * eps, 40 * eps), panel(40 * eps, 12 * s)]))
    dens = np.exp(-(zb[None, :] - rho * za[:, None]) ** 2 / (2 * s * s)) / np.sqrt(2 * np.pi * s * s)
    d1 = a + (1 - a) * 0.5 * (1 + np.tanh(zb / (2 * eps)))
    sig = a * zb + (1 - a) * eps * np.logaddexp(0.0, zb / eps)
    EA, EB = dens @ (wb * d1**3), dens @ (wb * sig * d1**2)
    # dz_0 σ'''(z_0) = (1 - a) sigmoid''(t) dt / ε,  dz_0 σ''(z_0) = (1 - a) sigmoid'(t) dt
    return (np.sum(wt * (1 - a) * s2 / eps * pa * EA), np.sum(wt * (1 - a) * s1 * pa * EB))


@pytest.mark.parametrize("a", [0.0, 0.2])
def test_ddntk_second_layer_distributional_R_is_the_smoothed_kink_limit(a):
    """Kinked R (σ'' = (1-a)δ, σ''' = (1-a)δ') against activations smoothed on a scale ε, ε -> 0 by Richardson
    (error O(ε^2)); the almost-everywhere value (R = 0) is the null, and the other entries are NaN."""
    from pdlt.theory import ddntk_second_layer

    act = pdlt.leaky_relu(a) if a else "relu"
    x = _inputs(2)
    C_b, C_W, lb, lw = 0.1, 1.7, 0.5, 1.3
    K = C_b + C_W * np.asarray(x @ x.T) / x.shape[1]
    Th = lb + np.asarray(x @ x.T) / x.shape[1]
    r = ddntk_second_layer(x, C_b=C_b, C_W=C_W, activation=act, lambda_b=lb, lambda_W=[1.0, lw], kink="distributional")
    R = np.asarray(r["R"])
    for i in (0, 1):
        j = 1 - i
        perm = [i, j]
        Kp = K[np.ix_(perm, perm)]
        (A1, B1), (A2, B2) = _smoothed_R_moments(0.02, a, Kp), _smoothed_R_moments(0.01, a, Kp)
        A, B = (4 * A2 - A1) / 3, (4 * B2 - B1) / 3
        want = C_W**2 * A * Th[i, j] ** 3 + lw * C_W * B * Th[i, j] ** 2
        assert abs(R[i, j, j, j] - want) < 1e-5 * abs(want) and abs(want) > 1e-3
    assert np.isnan(R).sum() == 14
    ae = ddntk_second_layer(x, C_b=C_b, C_W=C_W, activation=act, lambda_b=lb, lambda_W=[1.0, lw])
    assert float(np.max(np.abs(np.asarray(ae["R"])))) == 0.0
    for k in "STU":
        np.testing.assert_array_equal(np.asarray(r[k]), np.asarray(ae[k]))


def test_ddntk_second_layer_distributional_R_limits_and_refusals():
    """Leaky ReLU with a = 1 is linear (R = 0, and the kinked formula -> 0 as a -> 1); one input or two coincident
    ones have no finite distributional R and raise naming `kink`."""
    from pdlt.theory import ddntk_second_layer

    x = _inputs(2)
    kw = dict(C_b=0.0, C_W=2.0, lambda_b=0.5, lambda_W=1.0, kink="distributional")
    assert float(np.max(np.abs(np.asarray(ddntk_second_layer(x, activation=pdlt.leaky_relu(1.0), **kw)["R"])))) == 0.0
    Rn = np.asarray(ddntk_second_layer(x, activation=pdlt.leaky_relu(1 - 1e-6), **kw)["R"])
    Rr = np.asarray(ddntk_second_layer(x, activation="relu", **kw)["R"])
    assert np.nanmax(np.abs(Rn)) < 1e-10 < np.nanmax(np.abs(Rr))
    for bad in (x[:1], jnp.concatenate([x[:1], x[:1]])):
        with pytest.raises(pdlt.PDLTValueError, match="kink"):
            ddntk_second_layer(bad, activation="relu", **kw)
