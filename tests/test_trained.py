"""Trained finite-width ensembles: giant leaps, control variates, nearly-kernel closed form, §6.4 posterior."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt

jax.config.update("jax_enable_x64", True)


def _task(N=6, n0=3, seed=0):
    xA, yA, xD, _ = pdlt.learning.synthetic_task(jax.random.key(seed), n_train=N, n_test=3, n0=n0)
    return xA, yA, xD


def test_last_layer_training_is_a_kernel_prediction():
    """A network trained in its last layer only is linear in its parameters: one giant leap and GD to
    convergence both land exactly on the kernel prediction with that layer's features."""
    xA, yA, xD = _task()
    x = jnp.concatenate([xA, xD])
    rates = dict(lambda_b=[0.0, 0.0, 1.0], lambda_W=[0.0, 0.0, 1.0])
    p = pdlt.ensembles.init_mlp(jax.random.key(1), 3, [24, 24, 1], C_b=0.1, C_W=2.0)
    H = pdlt.empirical_ntk(p, x, "tanh", **rates)[0, 0]
    z0 = pdlt.ensembles.mlp_apply(p, x, "tanh")
    kernel = pdlt.learning.frozen_ntk_prediction(H, z0, yA, 6)
    leap = pdlt.ensembles.mlp_apply(pdlt.learning.giant_leap(p, xA, yA, activation="tanh", **rates),
                                    x, "tanh")
    np.testing.assert_allclose(leap, kernel, rtol=1e-9, atol=1e-10)
    lam = np.linalg.eigvalsh(np.asarray(H[:6, :6]))
    P = jax.tree_util.tree_map(lambda a: a[None], p)
    PT, _ = pdlt.train_ensemble(P, xA, yA, eta=1.0 / lam[-1], steps=int(40 * lam[-1] / lam[0]), activation="tanh", **rates)
    np.testing.assert_allclose(pdlt.learning.ensemble_apply(PT, x, "tanh")[0], kernel, rtol=1e-7,
                               atol=1e-8)


def test_giant_leap_ensemble_matches_single_leaps_and_fits():
    xA, yA, _ = _task()
    P = pdlt.learning.init_ensemble(jax.random.key(2), 3, [32, 32, 1], C_b=0.0, C_W=1.0, n_nets=2)
    PT = pdlt.learning.giant_leap_ensemble(P, xA, yA, steps=5, activation="tanh", lambda_b=0.0)
    p = jax.tree_util.tree_map(lambda a: a[1], P)
    for _ in range(5):
        p = pdlt.learning.giant_leap(p, xA, yA, activation="tanh", lambda_b=0.0)
    for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a: a[1], PT))):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # Gauss-Newton on a smooth network: the residual (O(1) at the start) converges quadratically
    assert float(jnp.max(jnp.abs(pdlt.learning.ensemble_apply(PT, xA, "tanh") - yA))) < 1e-6


def test_linear_control_has_mean_m_inf():
    """E[z_lin] = m∞ for Gaussian initial outputs of covariance K (4.5 SE); the control mean 0 is rejected."""
    xA, yA, xD = _task()
    inf = pdlt.learning.infinite_width_ensemble(xA, yA, xD, C_b=0.0, C_W=2.0, L=3, lambda_b=0.0)
    K = np.asarray(inf["K"])
    z0 = jax.random.multivariate_normal(jax.random.key(3), jnp.zeros(9), K + 1e-12 * np.eye(9), (20000,))[..., None]
    zl = np.asarray(pdlt.learning.linear_control(inf["Theta"], z0, yA, 6))[:, :, 0]
    m, se = zl.mean(0), zl.std(0, ddof=1) / np.sqrt(len(zl))
    assert np.all(np.abs(m - np.asarray(inf["m"][:, 0])) < 4.5 * se)
    assert np.any(np.abs(m) > 4.5 * se)
    # its variance is Σ∞ (the closed form of trained_ensemble_moments)
    v, vse = pdlt.variance_and_se(zl)
    assert np.all(np.abs(np.asarray(v) - np.diag(np.asarray(inf["Sigma"]))) < 4.5 * np.asarray(vse))
    # the control-variate covariance with z_T = z_lin is the supplied Cov(z_lin), with zero bracket
    c, _ = pdlt.learning.control_variate_cov(zl, zl, np.cov(zl.T), np.zeros((3, 3)))
    np.testing.assert_allclose(c, np.cov(zl.T), rtol=1e-12)


def test_fit_inverse_width_exact_line():
    n = np.array([32, 64, 128, 256])
    a, b, sa, sb, chi2 = pdlt.learning.fit_inverse_width(n, 0.7 - 3.0 / n, np.full(4, 0.01))
    assert abs(a - 0.7) < 1e-12 and abs(b + 3.0) < 1e-9 and chi2 < 1e-18 and sa > 0 and sb > 0


@pytest.mark.parametrize("eta_scale", [None, 0.5, 1.5])
def test_nearly_kernel_closed_form_is_first_order_exact(eta_scale):
    """Trained explicit quadratic model minus the closed form is O(ε²): halving ε divides the remainder by ~4."""
    k = jax.random.key(3)
    N, ntr, P = 8, 6, 40
    phi = jax.random.normal(jax.random.fold_in(k, 1), (N, P)) / np.sqrt(P)
    A = jax.random.normal(jax.random.fold_in(k, 2), (N, P, P)) / P
    psi = A + jnp.transpose(A, (0, 2, 1))
    w0 = jax.random.normal(jax.random.fold_in(k, 3), (P,))
    y = jax.random.normal(jax.random.fold_in(k, 4), (ntr,))
    rem, corr = [], []
    for eps in (1e-2, 5e-3):
        f = lambda w: pdlt.learning.quadratic_model_apply(w, phi, psi, eps)  # noqa: E731
        H, dH = pdlt.learning.model_ntk_dntk(f, w0)
        lam = np.linalg.eigvalsh(np.asarray(H[:ntr, :ntr]))
        eta = None if eta_scale is None else eta_scale / lam[-1]
        zk, c = pdlt.learning.nearly_kernel_prediction(H, dH, f(w0), y, ntr, eta=eta)
        steps = 4 if eta is None else int(60 * lam[-1] / lam[0] / min(eta_scale, 2 - eta_scale))
        zT = pdlt.learning.train_quadratic_explicit(w0, phi, psi, eps, y, ntr, eta=eta, steps=steps)
        rem.append(float(jnp.max(jnp.abs(zT[ntr:] - zk - c))))
        corr.append(float(jnp.max(jnp.abs(c))))
    assert rem[0] < 0.1 * corr[0]                       # the first-order term carries the correction
    assert rem[1] < 0.35 * rem[0]                       # remainder O(ε²): ratio 1/4 (+ O(ε))


def test_nearly_kernel_zero_dntk_is_kernel():
    H = jnp.eye(4) + 0.1
    z0 = jnp.arange(4.0)
    zk, c = pdlt.learning.nearly_kernel_prediction(H, jnp.zeros((4, 4, 4)), z0, jnp.ones(3), 3,
                                                   eta=0.3)
    np.testing.assert_allclose(c, 0.0)
    np.testing.assert_allclose(zk, pdlt.learning.frozen_ntk_prediction(H, z0[:, None], jnp.ones((3, 1)), 3)[3:, 0])


def test_posterior_correction_limits():
    """With V = 0 the 1/n coefficient is the derivative of the GP posterior along G1; with Ĝ = K for every
    network the exact finite-width posterior is the GP posterior."""
    K = jnp.array([[2.0, 0.8, 0.5], [0.8, 1.5, 0.3], [0.5, 0.3, 1.2]])
    y = jnp.array([[0.7], [-0.4]])
    G1 = jnp.array([[0.3, 0.1, 0.0], [0.1, -0.2, 0.05], [0.0, 0.05, 0.4]])
    dm, dS = pdlt.learning.finite_width_posterior_correction(K, G1, jnp.zeros((3,) * 4), y, 2, 0.1)
    h = 1e-6
    mp, Sp = pdlt.learning.gp_posterior(K + h * G1, y, 2, 0.1)
    mm, Sm = pdlt.learning.gp_posterior(K - h * G1, y, 2, 0.1)
    np.testing.assert_allclose(dm, (mp - mm)[:, 0] / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(dS, (Sp - Sm) / (2 * h), rtol=1e-6, atol=1e-10)
    m, mse, c, cse = pdlt.learning.finite_width_posterior_moments(jnp.broadcast_to(K, (5, 3, 3)), y,
                                                                  2, 0.1)
    m_gp, S_gp = pdlt.learning.gp_posterior(K, y, 2, 0.1)
    np.testing.assert_allclose(m, m_gp[:, 0], rtol=1e-12)
    np.testing.assert_allclose(c, S_gp, rtol=1e-10, atol=1e-14)


def test_bad_inputs_raise():
    xA, yA, _ = _task()
    p = pdlt.ensembles.init_mlp(jax.random.key(0), 3, [4, 1], C_W=1.0)
    with pytest.raises(pdlt.PDLTValueError, match="kappa"):
        pdlt.learning.giant_leap(p, xA, yA, kappa=jnp.eye(3))
    with pytest.raises(pdlt.PDLTValueError, match="algorithm"):
        pdlt.learning.trained_outputs(jax.random.key(0), xA, yA, xA, widths=[4, 1], C_b=0.0, C_W=1.0, n_nets=2, algorithm="adam")
    with pytest.raises(pdlt.PDLTValueError, match="dH"):
        pdlt.learning.nearly_kernel_prediction(jnp.eye(4), jnp.zeros((4, 4)), jnp.zeros(4),
                                               jnp.zeros(3), 3)
    with pytest.raises(pdlt.PDLTValueError, match="V"):
        pdlt.learning.finite_width_posterior_correction(jnp.eye(3), jnp.eye(3), jnp.zeros((3, 3)), jnp.ones((2, 1)), 2, 0.1)


def test_ntk_mean_shift_coefficient_limits():
    """Without fluctuations the coefficient is the derivative of H_DA H_AA^{-1} y along H1; with A, B it
    matches the second-order expansion evaluated by sampling a Gaussian NTK of that covariance."""
    Th = jnp.array([[2.0, 0.8, 0.5], [0.8, 1.5, 0.3], [0.5, 0.3, 1.2]])
    H1 = jnp.array([[0.3, 0.1, 0.0], [0.1, -0.2, 0.05], [0.0, 0.05, 0.4]])
    y = jnp.array([0.7, -0.4])
    b = pdlt.learning.ntk_mean_shift_coefficient(Th, H1, jnp.zeros((3,) * 4), jnp.zeros((3,) * 4),
                                                 y, 2)
    f = lambda H: H[2, :2] @ jnp.linalg.solve(H[:2, :2], y)  # noqa: E731
    h = 1e-6
    np.testing.assert_allclose(b[0], (f(Th + h * H1) - f(Th - h * H1)) / (2 * h), rtol=1e-6)
    # A = outer(S, S) for a symmetric S (B = 0): Ĥ = Θ + g S / sqrt(n), g ~ N(0, 1); E f exactly by quadrature
    S = jnp.array([[0.2, -0.1, 0.3], [-0.1, 0.4, 0.0], [0.3, 0.0, -0.2]])
    A = jnp.einsum("ab,cd->abcd", S, S)
    b2 = pdlt.learning.ntk_mean_shift_coefficient(Th, jnp.zeros((3, 3)), A, jnp.zeros((3,) * 4), y,
                                                  2)[0]
    n = 1e4
    g, w = np.polynomial.hermite_e.hermegauss(40)
    Ef = sum(wi * float(f(Th + gi * S / np.sqrt(n))) for gi, wi in zip(g, w)) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(n * (Ef - float(f(Th))), float(b2), rtol=1e-3)


def _task2(seed=7):
    xA, yA, xD, _ = pdlt.learning.synthetic_task(jax.random.fold_in(jax.random.key(0), seed), n_train=2,
                                                 n_test=2, n0=3)
    return xA, yA, xD


def test_trained_mean_correction_last_layer_only_is_exact_kernel():
    """Trained in the last layer only (first-layer rates 0) a depth-two net is linear in its parameters:
    one fixed-kappa leap lands exactly on z - H_hat kappa eps, whose mean is m_inf at any width; the
    theory's dNTK and ddNTK terms vanish and its total is the NTK part alone."""
    xA, yA, xD = _task2()
    x = jnp.concatenate([xA, xD])
    rates = dict(lambda_b=[0.0, 0.5], lambda_W=[0.0, 1.0])
    kw = dict(C_b=0.1, C_W=1.5, activation="tanh", **rates)
    rs = pdlt.learning.trained_mean_correction_depth2(xA, yA[:, 0], xD, algorithm=("leap-fixed", "leap"),
                                                      parts=True, **kw)
    for r in rs.values():
        np.testing.assert_allclose(r["dntk"], 0.0, atol=1e-12)
        np.testing.assert_allclose(r["ddntk"], 0.0, atol=1e-12)
        np.testing.assert_allclose(r["total"], r["ntk"], atol=1e-12)
    np.testing.assert_allclose(rs["leap-fixed"]["total"], 0.0, atol=1e-12)
    Th = pdlt.ntk_recursion(x, C_b=0.1, C_W=1.5, L=2, activation="tanh", **rates)[1][-1]
    kap = jnp.linalg.inv(Th[:2, :2])
    P = pdlt.learning.init_ensemble(jax.random.key(3), 3, [7, 1], C_b=0.1, C_W=1.5, n_nets=3)
    PT = pdlt.learning.giant_leap_ensemble(P, xA, yA, activation="tanh", kappa=kap, **rates)
    H = pdlt.learning.stacked_ntk(P, x, "tanh", **rates)[:, 0, 0]
    z0 = pdlt.learning.ensemble_apply(P, x, "tanh")[:, :, 0]
    lin = z0 - jnp.einsum("sda,ab,sb->sd", H[:, :, :2], kap, z0[:, :2] - yA[None, :, 0])
    np.testing.assert_allclose(pdlt.learning.ensemble_apply(PT, x, "tanh")[:, :, 0], lin, atol=1e-10)


def test_trained_mean_correction_odd_in_targets_and_vanishes_at_large_width():
    xA, yA, xD = _task2()
    kw = dict(C_b=0.0, C_W=1.0, activation="tanh", lambda_b=0.0, lambda_W=1.0)
    algs = ("leap-fixed", "leap")
    bs = pdlt.learning.trained_mean_correction_depth2(xA, yA[:, 0], xD, algorithm=algs, **kw)
    bms = pdlt.learning.trained_mean_correction_depth2(xA, -yA[:, 0], xD, algorithm=algs, **kw)
    for alg in algs:
        b, bm = bs[alg], bms[alg]
        np.testing.assert_allclose(bm, -b, atol=1e-12)
        assert np.all(np.isfinite(b)) and np.max(np.abs(b)) > 0.05
        # E z_T - m_inf = b / n -> 0: the width enters only as the prefactor
        assert np.max(np.abs(b)) / 10**6 < 1e-6


def test_trained_mean_correction_against_trained_tanh_ensemble():
    """Depth two, tanh, one fixed-kappa leap: n (E z_T - m_inf) against the theory (4.5 SE), with the
    network's own one-step linear model z - H_hat kappa eps (mean m_inf exactly at depth two) as control."""
    xA, yA, xD = _task2()
    x = jnp.concatenate([xA, xD])
    kw = dict(C_b=0.0, C_W=1.0, activation="tanh", lambda_b=0.0, lambda_W=1.0)
    r = pdlt.learning.trained_mean_correction_depth2(xA, yA[:, 0], xD, parts=True, **kw)
    rates = dict(lambda_b=0.0, lambda_W=1.0)
    Th = pdlt.ntk_recursion(x, C_b=0.0, C_W=1.0, L=2, activation="tanh", **rates)[1][-1]
    kap = jnp.linalg.inv(Th[:2, :2])
    n, S = 64, 4000
    P = pdlt.learning.init_ensemble(jax.random.key(5), 3, [n, 1], C_b=0.0, C_W=1.0, n_nets=S)
    PT = pdlt.learning.giant_leap_ensemble(P, xA, yA, activation="tanh", kappa=kap, **rates)
    H = pdlt.learning.stacked_ntk(P, x, "tanh", **rates)[:, 0, 0]
    z0 = pdlt.learning.ensemble_apply(P, x, "tanh")[:, 2:, 0]
    eps = pdlt.learning.ensemble_apply(P, xA, "tanh")[:, :, 0] - yA[None, :, 0]
    lin = z0 - jnp.einsum("sda,ab,sb->sd", H[:, 2:, :2], kap, eps)
    d = n * np.asarray(pdlt.learning.ensemble_apply(PT, xD, "tanh")[:, :, 0] - lin)
    m, se = d.mean(0), d.std(0, ddof=1) / np.sqrt(S)
    b = np.asarray(r["total"])
    assert np.all(np.abs(m - b) < 4.5 * se), (m, se, b)
    assert np.abs(b[0]) > 9 * se[0] and np.abs(r["ddntk"][0]) > 4.5 * se[0]


def test_trained_mean_correction_bad_inputs():
    xA, yA, xD = _task2()
    with pytest.raises(pdlt.PDLTValueError):
        pdlt.learning.trained_mean_correction_depth2(xA, yA[:, 0], xD, C_b=0.0, C_W=1.0, algorithm="gd")
    N = 3
    z = jnp.zeros((N,) * 4)
    with pytest.raises(pdlt.PDLTValueError):
        pdlt.learning.trained_mean_correction(jnp.eye(N), jnp.eye(N), jnp.ones(2), 2, P=z, Q=z, R=z,
                                              algorithm="leap")
    with pytest.raises(pdlt.PDLTValueError):
        pdlt.learning.trained_mean_correction(jnp.eye(N), jnp.eye(N), jnp.ones(2), 2, P=z[0], Q=z, R=z)


def _relu_task():
    xA, yA, xD, _ = pdlt.learning.synthetic_task(jax.random.fold_in(jax.random.key(0), 7), n_train=1,
                                                 n_test=2, n0=3)
    return xA, yA, xD


def test_trained_mean_correction_distributional_relu_refuses_a_test_input_on_the_training_input():
    xA, yA, xD = _relu_task()
    kw = dict(C_b=0.0, C_W=2.0, activation="relu", lambda_b=0.0, lambda_W=1.0, kink="distributional")
    b = pdlt.learning.trained_mean_correction_depth2(xA, yA[:, 0], xD, **kw)
    assert np.all(np.isfinite(np.asarray(b)))
    with pytest.raises(pdlt.PDLTValueError, match="kink"):
        pdlt.learning.trained_mean_correction_depth2(xA, yA[:, 0], xA, **kw)


@pytest.mark.slow
def test_trained_mean_correction_against_trained_relu_ensemble():
    """Depth two, ReLU, one training input, one fixed-kappa leap: n (E z_T - m_inf), fitted a + b/n over
    n = 64, 128, 256, against the theory with distributional P, Q, R (4.5 SE); the same with R dropped
    (the preactivations crossing the kink through σ''') is rejected at the first test input."""
    xA, yA, xD = _relu_task()
    x = jnp.concatenate([xA, xD])
    rates = dict(lambda_b=0.0, lambda_W=1.0)
    r = pdlt.learning.trained_mean_correction_depth2(xA, yA[:, 0], xD, parts=True, C_b=0.0, C_W=2.0,
                                                      activation="relu", kink="distributional", **rates)
    Th = pdlt.ntk_recursion(x, C_b=0.0, C_W=2.0, L=2, activation="relu", **rates)[1][-1]
    kap = jnp.linalg.inv(Th[:1, :1])
    widths, S, chunk = (64, 128, 256), 100_000, 5000
    res = []
    for i, n in enumerate(widths):
        ds = []
        for c in range(S // chunk):
            P = pdlt.learning.init_ensemble(jax.random.fold_in(jax.random.fold_in(jax.random.key(23), i), c), 3,
                                            [n, 1], C_b=0.0, C_W=2.0, n_nets=chunk)
            PT = pdlt.learning.giant_leap_ensemble(P, xA, yA, activation="relu", kappa=kap, **rates)
            H = pdlt.learning.stacked_ntk(P, x, "relu", **rates)[:, 0, 0]
            z0 = pdlt.learning.ensemble_apply(P, x, "relu")[:, :, 0]
            lin = z0[:, 1:] - jnp.einsum("sda,ab,sb->sd", H[:, 1:, :1], kap, z0[:, :1] - yA[None, :, 0])
            ds.append(n * np.asarray(pdlt.learning.ensemble_apply(PT, xD, "relu")[:, :, 0] - lin))
        d = np.concatenate(ds)
        res.append((d.mean(0), d.std(0, ddof=1) / np.sqrt(S)))
    res = np.array(res)
    b, b0 = np.asarray(r["total"]), np.asarray(r["total"] - r["ddntk"])
    for k in range(2):
        a, _, sa, _, _ = pdlt.learning.fit_inverse_width(widths, res[:, 0, k], res[:, 1, k])
        assert abs(a - b[k]) < 4.5 * sa, (k, a, sa, b[k])
        if k == 0:
            assert abs(a - b0[k]) > 4.5 * sa, (a, sa, b0[k])
