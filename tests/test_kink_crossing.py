"""Kink crossings in trained ReLU-like networks: the n^{-1/2} terms of the trained mean and of the NTK."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt
from pdlt.learning import GD

Z = 4.5


def _task(n_test=2):
    xR, yR, xRD, _ = pdlt.learning.synthetic_task(jax.random.fold_in(jax.random.PRNGKey(0), 7), n_train=1,
                                                  n_test=n_test, n0=3)
    return xR, yR, xRD


def test_gaussian_averages_match_quadrature():
    """The one-step training residual and the NTK shift carry E[S0|S0|] and E|S0| of S0 = (z_A - y)/Θ_AA,
    z_A ~ N(0, K_AA): against a direct quadrature, for several targets and slopes."""
    x = np.linspace(-40, 40, 800001)
    Th1 = np.array([[0.8, 0.3], [0.3, 1.1]])
    K1 = np.array([[1.7, 0.5], [0.5, 1.2]])
    Th = np.array([[2.5, 0.9], [0.9, 2.2]])
    for y, (ap, am), C_W in ((0.0, (1.0, 0.0), 2.0), (0.81, (1.0, 0.1), 1.5), (-2.3, (0.5, -0.2), 1.0)):
        K = np.array([[1.9, 0.4], [0.4, 1.3]])
        p = np.exp(-0.5 * (x + y) ** 2 / K[0, 0]) / np.sqrt(2 * np.pi * K[0, 0])   # ε0 = z_A - y
        gam = (ap - am) ** 2 * (ap + am) * C_W**1.5 / (np.pi * np.sqrt(K1[0, 0]))
        r = pdlt.learning.trained_kink_correction(Th1, K1, Th, K, jnp.array([y]), a_plus=ap, a_minus=am,
                                                  C_W=C_W, algorithm="leap-fixed", parts=True)
        e_xabs = np.trapezoid(x * np.abs(x) * p, x) / Th[0, 0] ** 2
        e_abs = np.trapezoid(np.abs(x) * p, x) / Th[0, 0]
        assert float(r["train_residual"]) == pytest.approx(0.5 * gam * Th1[0, 0] ** 2 * e_xabs, abs=1e-9)
        assert float(r["ntk"][0]) == pytest.approx(-gam * Th1[0, 0] ** 2 * e_abs, abs=1e-9)
        assert float(r["ntk"][1]) == pytest.approx(-0.5 * gam * Th1[0, 0] * Th1[1, 0] * e_abs, abs=1e-9)


@pytest.mark.parametrize("slopes", [(1.0, 0.0), (1.0, 0.1)])
@pytest.mark.parametrize("s", [0.3, 0.7, 1.0])
def test_crossing_window_of_the_exact_neuron_dynamics(slopes, s):
    """Neurons on a dense grid of initial preactivations, driven by the leading-order drive
    ΔS_t = η ε0 (1 - s)^t with the exact piecewise-linear updates, reproduce the two crossing integrals
    of the derivation: the training output's p(0) Θ1² (a+² - a-²)(a+ - a-) S|S| ν³/4 and the test
    preactivation's overshoot deficit p(0) Θ1_AA Θ1_δA (a+ - a-)² S0|S0| (1 - s)/(2 - s) ν³/2."""
    ap, am = slopes
    th_A, th_D, eps0, theta, nu = 0.9, 0.55, -1.3, 2.0, 1e-3
    eta = s / theta
    dS = eta * eps0 * (1 - s) ** np.arange(200)
    S0 = dS.sum()
    w = max(ap, am) * nu * th_A * abs(S0)
    u0 = np.linspace(-2 * w, 2 * w, 400001)
    du = u0[1] - u0[0]
    sig = lambda u: np.where(u > 0, ap * u, am * u)  # noqa: E731
    dsig = lambda u: np.where(u > 0, ap, am)  # noqa: E731
    cA, cD = 0.0, 0.0
    for v in (nu, -nu):
        u, dD = u0.copy(), np.zeros_like(u0)
        for d in dS:
            g = dsig(u)
            dD -= v * g * th_D * d
            u = u - v * g * th_A * d
        lin_A = sig(u0) - dsig(u0) ** 2 * v * th_A * S0
        cA += 0.5 * v * np.sum(sig(u) - lin_A) * du
        cD += 0.5 * v * np.sum(dD + dsig(u0) * v * th_D * S0) * du
    assert cA == pytest.approx(th_A**2 * (ap**2 - am**2) * (ap - am) * S0 * abs(S0) * nu**3 / 4, rel=2e-3)
    assert cD == pytest.approx(th_A * th_D * (ap - am) ** 2 * S0 * abs(S0) * (1 - s) / (2 - s) * nu**3 / 2,
                               rel=2e-3, abs=1e-15)


def test_rate_dependence_leaps_and_vanishing_target():
    xR, yR, xRD = _task()
    kw = dict(C_b=0.1, C_W=2.0, lambda_b=0.5, lambda_W=1.0)
    th = float(pdlt.ntk_recursion(xR, C_b=0.1, C_W=2.0, L=2, activation="relu", lambda_b=0.5)[1][-1][0, 0])
    r = {s: pdlt.learning.trained_kink_correction_depth2(xR, yR[:, 0], xRD, algorithm=GD(s / th, 200), parts=True,
                                                         **kw) for s in (0.25, 0.5, 1.0)}
    np.testing.assert_allclose(r[0.25]["overshoot"] / r[0.5]["overshoot"], (0.75 / 1.75) / (0.5 / 1.5), rtol=1e-12)
    np.testing.assert_allclose(r[1.0]["overshoot"], 0.0, atol=1e-15)
    for s in (0.25, 0.5):
        np.testing.assert_allclose(r[s]["residual"], r[1.0]["residual"], rtol=1e-12)
        np.testing.assert_allclose(r[s]["ntk"], r[1.0]["ntk"], rtol=1e-12)
    assert np.all(np.abs(np.asarray(r[0.5]["total"])) > 1e-3)
    for alg in ("leap-fixed", "leap"):
        q = pdlt.learning.trained_kink_correction_depth2(xR, yR[:, 0], xRD, algorithm=alg, parts=True, **kw)
        np.testing.assert_allclose(q["total"], 0.0, atol=0)
        assert float(q["train_residual"]) > 0.01
    zero_y = pdlt.learning.trained_kink_correction_depth2(xR, 0 * yR[:, 0], xRD, algorithm=GD(0.5 / th, 200),
                                                          parts=True, **kw)
    np.testing.assert_allclose(zero_y["total"], 0.0, atol=1e-15)       # E[S0|S0|] = 0: odd in the target
    assert float(zero_y["ntk"][0]) < -0.1                                # the NTK still moves: E|S0| > 0


def test_bad_input_names_the_argument():
    xR, yR, xRD = _task()
    kw = dict(C_b=0.0, C_W=2.0, lambda_b=0.0, lambda_W=1.0)
    f = pdlt.learning.trained_kink_correction_depth2
    with pytest.raises(pdlt.PDLTValueError, match="`activation`"):
        f(xR, yR[:, 0], xRD, activation="tanh", algorithm="leap-fixed", **kw)
    with pytest.raises(pdlt.PDLTValueError, match="`x_train`"):
        f(jnp.concatenate([xR, xRD[:1]]), jnp.zeros(2), xRD[1:], algorithm="leap-fixed", **kw)
    with pytest.raises(pdlt.PDLTValueError, match="`algorithm`"):
        f(xR, yR[:, 0], xRD, algorithm=GD(0.75, 100), **kw)            # η Θ_AA = 1.5: not monotone
    with pytest.raises(pdlt.PDLTValueError, match="`algorithm`"):
        f(xR, yR[:, 0], xRD, algorithm=GD(0.05, 20), **kw)             # does not converge
    with pytest.raises(pdlt.PDLTValueError, match="`algorithm`"):
        f(xR, yR[:, 0], xRD, algorithm="newton", **kw)


@pytest.mark.slow
def test_relu_gradient_descent_against_trained_networks():
    """√n E[z_T − z_own] of trained ReLU networks (4000 per width, n = 64, 256, 1024), fitted a + b/√n."""
    xR, yR, xRD = _task()
    x_all = jnp.concatenate([xR, xRD])
    rates = dict(lambda_b=0.0, lambda_W=1.0)
    alg = GD(0.5 / 2.0, 40)
    th = pdlt.learning.trained_kink_correction_depth2(xR, yR[:, 0], xRD, C_b=0.0, C_W=2.0, algorithm=alg, **rates)
    widths, rows = [64, 256, 1024], []
    for i, n in enumerate(widths):
        P0 = pdlt.learning.init_ensemble(jax.random.PRNGKey(100 + i), 3, [n, 1], C_W=2.0, n_nets=4000)
        z0 = pdlt.learning.ensemble_apply(P0, x_all, "relu")[:, :, 0]
        H0 = pdlt.learning.stacked_ntk(P0, x_all, "relu", **rates)[:, 0, 0]
        own = z0[:, 1:] - H0[:, 1:, 0] / H0[:, :1, 0] * (z0[:, :1] - yR[0, 0])
        PT, _ = pdlt.learning.train_ensemble(P0, xR, yR, eta=alg.eta, steps=alg.steps, activation="relu", **rates)
        d = np.sqrt(n) * np.asarray(pdlt.learning.ensemble_apply(PT, xRD, "relu")[:, :, 0] - own)
        rows.append((d.mean(0), d.std(0, ddof=1) / np.sqrt(len(d))))
    rows = np.array(rows)
    for k in range(2):
        a, _, sa, _, _ = pdlt.learning.fit_inverse_width(widths, rows[:, 0, k], rows[:, 1, k], power=0.5)
        assert abs(a - float(th[k])) < Z * sa
        assert Z * sa < abs(float(th[k]))
