"""Training dynamics to second order in the derivative tensors, and the 1/n mean of trained outputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt
from pdlt.learning import GD

Z = 4.5


def _cubic_model(s, N=5, P=30, seed=11):
    k = jax.random.key(seed)
    phi = jax.random.normal(jax.random.fold_in(k, 1), (N, P)) / np.sqrt(P)
    a = jax.random.normal(jax.random.fold_in(k, 2), (N, P, P)) / P
    psi = a + jnp.transpose(a, (0, 2, 1))
    t = jax.random.normal(jax.random.fold_in(k, 3), (N, P, P, P)) / P**1.5
    tau = sum(jnp.transpose(t, (0,) + p) for p in ((1, 2, 3), (1, 3, 2), (2, 1, 3), (2, 3, 1), (3, 1, 2), (3, 2, 1))) / 6
    w0 = 0.3 * jax.random.normal(jax.random.fold_in(k, 4), (P,))

    def f(w):
        return (phi @ w + 0.5 * s * jnp.einsum("npq,p,q->n", psi, w, w)
                + s**2 / 6 * jnp.einsum("npqr,p,q,r->n", tau, w, w, w))

    return f, w0


def _train(f, w0, y, ntr, kap, steps):
    def step(w, _):
        J = jax.jacfwd(f)(w)[:ntr]
        return w - J.T @ (kap @ (f(w)[:ntr] - y)), None

    return f(jax.lax.scan(step, w0, None, length=steps)[0])


@pytest.mark.parametrize("algorithm", ["gd-small", "gd-large", "fixed-kappa"])
def test_expansion_is_exact_to_second_order(algorithm):
    """An explicit model with dNTK ∝ s and ddNTKs ∝ s²: the trained outputs minus the expansion are O(s³)
    (halving s divides the remainder by ~8), and the s² terms (ddNTKs, products of dNTKs) are resolved."""
    ntr = 3
    y = jax.random.normal(jax.random.key(5), (ntr,))
    rem, second = [], []
    for s in (0.2, 0.1):
        f, w0 = _cubic_model(s)
        H, dH = pdlt.learning.model_ntk_dntk(f, w0)
        ddI, ddII = pdlt.learning.model_ddntks(f, w0)
        lam = np.linalg.eigvalsh(np.asarray(H[:ntr, :ntr]))
        if algorithm == "fixed-kappa":
            kap, kw, steps = jnp.linalg.inv(H[:ntr, :ntr]), {}, 3
            kw = dict(kappa=kap, steps=steps)
        else:
            eta = (0.5 if algorithm == "gd-small" else 1.5) / lam[-1]
            steps = int(40 * lam[-1] / lam[0])
            kap, kw = eta * jnp.eye(ntr), dict(eta=eta, steps=steps)
        zT = _train(f, w0, y, ntr, kap, steps)
        ex = pdlt.learning.trained_outputs_expansion(f(w0), H, dH, ddI, ddII, y, ntr, **kw)
        ex1 = pdlt.learning.trained_outputs_expansion(f(w0), H, dH, 0 * ddI, 0 * ddII, y, ntr, **kw)
        rem.append(float(jnp.max(jnp.abs(zT - ex))))
        second.append(float(jnp.max(jnp.abs(ex - ex1))))
    assert rem[0] < 0.1 * second[0]                     # the ddNTK terms carry the O(s²) part
    assert rem[1] < 0.2 * rem[0]                        # remainder O(s³): ratio 1/8


def _random_tensors(N, seed=0):
    k = jax.random.key(seed)
    r = lambda i, shape: jax.random.normal(jax.random.fold_in(k, i), shape)  # noqa: E731
    X = r(0, (N, N + 2))
    Theta = X @ X.T / (N + 2) + 0.3 * jnp.eye(N)
    Y = r(1, (N, N + 3))
    K = Y @ Y.T / (N + 3) + 0.2 * jnp.eye(N)
    t = {name: 0.3 * r(2 + i, (N,) * 4) for i, name in enumerate("PQRSTU")}
    # the symmetries of the definitions: dH_{a0a1a2} in a1 <-> a2 (P), ddI in its last three inputs (R)
    t["P"] = 0.5 * (t["P"] + jnp.einsum("acbd->abcd", t["P"]))
    t["R"] = 0.5 * (t["R"] + jnp.einsum("abdc->abcd", t["R"]))
    return Theta, K, t


def test_one_fixed_step_is_the_closed_form():
    """One step with κ = Θ_AA⁻¹ through the dynamics equals the closed form of trained_mean_correction
    ("leap-fixed"), for arbitrary tensors; S, T, U do not enter one step."""
    N, ntr = 4, 2
    Theta, K, t = _random_tensors(N)
    y = jnp.array([0.7, -1.1])
    H1 = 0.2 * (Theta[::-1] + Theta[::-1].T)
    kap = jnp.linalg.inv(Theta[:ntr, :ntr])
    r = pdlt.learning.trained_mean_correction_steps(Theta, K, y, ntr, H1=H1, kappa=kap, steps=1, parts=True, **t)
    ref = pdlt.learning.trained_mean_correction(Theta, K, y, ntr, P=t["P"], Q=t["Q"], R=t["R"], H1=H1, parts=True)
    for k in ("total", "ntk", "dntk", "ddntk"):
        np.testing.assert_allclose(r[k], ref[k], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r["ddntk_II"], 0.0, atol=1e-12)
    assert float(jnp.max(jnp.abs(r["ddntk"]))) > 1e-2


def test_gd_ntk_part_at_convergence_is_the_own_ntk_shift():
    """Converged gradient descent: the NTK part is the mean shift of the own-NTK kernel prediction
    (ntk_mean_shift_coefficient), whatever the learning rate."""
    N, ntr = 4, 2
    Theta, K, t = _random_tensors(N, seed=1)
    A = 0.2 * jnp.einsum("ab,cd->abcd", Theta, Theta)
    B = 0.1 * jnp.einsum("ac,bd->abcd", K, K)
    H1 = 0.3 * K
    y = jnp.array([0.4, 0.9])
    lam = np.linalg.eigvalsh(np.asarray(Theta[:ntr, :ntr]))
    ref = pdlt.learning.ntk_mean_shift_coefficient(Theta, H1, A, B, y, ntr)
    for sc in (0.5, 1.2):
        r = pdlt.learning.trained_mean_correction_steps(Theta, K, y, ntr, H1=H1, A=A, B=B, eta=sc / lam[-1],
                                                        steps=int(80 * lam[-1] / lam[0]), parts=True, **t)
        np.testing.assert_allclose(r["ntk"], ref, rtol=1e-8)


@pytest.mark.parametrize("eta_scale", [0.5, 1.5])
def test_gd_dntk_response_is_the_nearly_kernel_closed_form(eta_scale):
    """The first-order response of the dynamics to the dNTK, converged, equals the closed form of
    nearly_kernel_prediction (derived separately, in the eigenbasis of H_AA)."""
    N, ntr = 5, 3
    k = jax.random.key(2)
    X = jax.random.normal(k, (N, N + 2))
    H = X @ X.T / (N + 2) + 0.3 * jnp.eye(N)
    dH = jax.random.normal(jax.random.fold_in(k, 1), (N, N, N))
    dH = 0.5 * (dH + jnp.transpose(dH, (0, 2, 1)))
    z0 = jax.random.normal(jax.random.fold_in(k, 2), (N,))
    y = jax.random.normal(jax.random.fold_in(k, 3), (ntr,))
    lam = np.linalg.eigvalsh(np.asarray(H[:ntr, :ntr]))
    eta = eta_scale / lam[-1]
    steps = int(80 * lam[-1] / lam[0] / min(eta_scale, 2 - eta_scale))
    zero = jnp.zeros((N,) * 4)
    f = lambda s: pdlt.learning.trained_outputs_expansion(z0, H, s * dH, zero, zero, y, ntr, eta=eta,  # noqa: E731
                                                          steps=steps)[ntr:]
    zk, dz = jax.jvp(f, (0.0,), (1.0,))
    zk_ref, c = pdlt.learning.nearly_kernel_prediction(H, dH, z0, y, ntr, eta=eta)
    np.testing.assert_allclose(zk, zk_ref, rtol=1e-9)
    np.testing.assert_allclose(dz, c, rtol=1e-7, atol=1e-10)


def _task2(seed=7):
    xA, yA, xD, _ = pdlt.learning.synthetic_task(jax.random.fold_in(jax.random.key(0), seed), n_train=2,
                                                 n_test=2, n0=3)
    return xA, yA, xD


def test_gd_last_layer_only_is_the_kernel_part():
    """Trained in its last layer only a depth-two network is linear in its parameters: the dNTK and
    ddNTK parts of the gradient-descent mean vanish and the total is the NTK part."""
    xA, yA, xD = _task2()
    kw = dict(C_b=0.1, C_W=1.5, activation="tanh", lambda_b=[0.0, 0.5], lambda_W=[0.0, 1.0])
    r = pdlt.learning.trained_mean_correction_depth2(xA, yA[:, 0], xD, algorithm=GD(0.4, 300), parts=True, **kw)
    for k in ("dntk", "ddntk_I", "ddntk_II"):
        np.testing.assert_allclose(r[k], 0.0, atol=1e-12)
    np.testing.assert_allclose(r["total"], r["ntk"], atol=1e-12)
    assert float(jnp.max(jnp.abs(r["ntk"]))) > 1e-3


def test_mlp_depth_two_is_depth2_and_deeper_last_layer_only_is_the_kernel_part():
    """``trained_mean_correction_mlp`` at L = 2 is the depth-two function; at L = 3 trained in its last
    layer only the network is linear in its parameters: dNTK and ddNTK parts vanish, and the NTK part
    (with the nonzero mean shift H¹ of a deeper NTK) is the total."""
    xA, yA, xD = _task2()
    kw = dict(C_b=0.1, C_W=1.5, activation="tanh")
    a2 = pdlt.learning.trained_mean_correction_depth2(xA, yA[:, 0], xD, algorithm=GD(0.4, 300), parts=True, **kw)
    m2 = pdlt.learning.trained_mean_correction_mlp(xA, yA[:, 0], xD, L=2, algorithm=GD(0.4, 300), parts=True, **kw)
    for k in a2:
        np.testing.assert_array_equal(a2[k], m2[k])
    r = pdlt.learning.trained_mean_correction_mlp(xA, yA[:, 0], xD, L=3, algorithm=GD(0.4, 300), parts=True,
                                                  lambda_b=[0.0, 0.0, 0.5], lambda_W=[0.0, 0.0, 1.0], **kw)
    for k in ("dntk", "ddntk_I", "ddntk_II"):
        np.testing.assert_allclose(r[k], 0.0, atol=1e-12)
    np.testing.assert_allclose(r["total"], r["ntk"], atol=1e-12)
    assert float(jnp.max(jnp.abs(r["ntk"]))) > 1e-3
    full = pdlt.learning.trained_mean_correction_mlp(xA, yA[:, 0], xD, L=3, algorithm=GD(0.4, 300), parts=True,
                                                     **kw)
    assert float(jnp.max(jnp.abs(full["dntk"] + full["ddntk"]))) > 1e-2
    with pytest.raises(pdlt.PDLTValueError, match="`kink`"):
        pdlt.learning.trained_mean_correction_mlp(xA[:1], yA[:1, 0], xD, L=3, C_b=0.0, C_W=2.0,
                                                  activation="relu", kink="distributional")
    with pytest.raises(pdlt.PDLTValueError, match="`L`"):
        pdlt.learning.trained_mean_correction_mlp(xA, yA[:, 0], xD, L=1, **kw)


def test_gd_mean_odd_in_targets_and_learning_rate_dependent():
    xA, yA, xD = _task2()
    kw = dict(C_b=0.0, C_W=1.0, activation="tanh", lambda_b=0.0, lambda_W=1.0)
    algs = (GD(0.3, 400), GD(0.6, 400))
    b = pdlt.learning.trained_mean_correction_depth2(xA, yA[:, 0], xD, algorithm=algs, **kw)
    bm = pdlt.learning.trained_mean_correction_depth2(xA, -yA[:, 0], xD, algorithm=algs, **kw)
    for a in algs:
        np.testing.assert_allclose(bm[a], -b[a], atol=1e-12)
    assert float(jnp.max(jnp.abs(b[algs[0]] - b[algs[1]]))) > 0.02


def test_bad_inputs_name_the_parameter():
    N, ntr = 3, 2
    Theta, K, t = _random_tensors(N)
    y = jnp.ones(ntr)
    with pytest.raises(pdlt.PDLTValueError, match="eta"):
        pdlt.learning.trained_mean_correction_steps(Theta, K, y, ntr, eta=0.1, kappa=jnp.eye(2), **t)
    with pytest.raises(pdlt.PDLTValueError, match="eta"):
        pdlt.learning.trained_mean_correction_steps(Theta, K, y, ntr, eta=-0.1, **t)
    with pytest.raises(pdlt.PDLTValueError, match="`S`"):
        pdlt.learning.trained_mean_correction_steps(Theta, K, y, ntr, eta=0.1, **{**t, "S": t["S"][0]})
    with pytest.raises(pdlt.PDLTValueError, match="steps"):
        pdlt.learning.trained_outputs_expansion(jnp.zeros(N), Theta, jnp.zeros((N,) * 3), t["R"], t["S"], y, ntr,
                                                eta=0.1, steps=0)
    xA, yA, xD = _task2()
    with pytest.raises(pdlt.PDLTValueError, match="kink"):
        pdlt.learning.trained_mean_correction_depth2(xA[:1], yA[:1, 0], xD, C_b=0.0, C_W=2.0, activation="relu",
                                                     algorithm=GD(0.3, 10), kink="distributional")


def _gd_motion_rows(xA, yA, xD, widths, S, seed0, L, alg, rates):
    """Per width: mean and SE of n·(z_T − z_own) of S tanh networks of depth L trained by ``alg``."""
    x = jnp.concatenate([xA, xD])
    rows = []
    for i, n in enumerate(widths):
        P0 = pdlt.learning.init_ensemble(jax.random.key(seed0 + i), 3, [n] * (L - 1) + [1], C_b=0.0, C_W=1.0,
                                         n_nets=S)
        z0 = pdlt.learning.ensemble_apply(P0, x, "tanh")[:, :, 0]
        H0 = pdlt.learning.stacked_ntk(P0, x, "tanh", **rates)[:, 0, 0]
        own = z0[:, 2:] - jnp.einsum("sda,sa->sd", H0[:, 2:, :2],
                                     jnp.linalg.solve(H0[:, :2, :2], (z0[:, :2] - yA[None, :, 0])[..., None])[..., 0])
        PT, _ = pdlt.learning.train_ensemble(P0, xA, yA, eta=alg.eta, steps=alg.steps, activation="tanh", **rates)
        d = n * np.asarray(pdlt.learning.ensemble_apply(PT, xD, "tanh")[:, :, 0] - own)
        rows.append((d.mean(0), d.std(0, ddof=1) / np.sqrt(S)))
    return np.array(rows)


@pytest.mark.slow
@pytest.mark.parametrize("L, widths, S, seed0, steps", [(2, [32, 64, 128], 6000, 40, 400),
                                                       (3, [16, 32, 64], 4000, 60, 800)])
def test_gd_trained_mean_against_trained_tanh_ensembles(L, widths, S, seed0, steps):
    """Depth two and three (hidden layers of width n), tanh, gradient descent to convergence: n·E[z_T − z_own]
    (z_own the network's own-NTK kernel prediction) fitted a + b/n over three widths against the dNTK + ddNTK
    parts from the layer-L tensors (4.5 SE, and more than 4.5 SE from 0); the dNTK alone is rejected."""
    xA, yA, xD = _task2()
    x = jnp.concatenate([xA, xD])
    rates = dict(lambda_b=0.0, lambda_W=1.0)
    Th = pdlt.ntk_recursion(x, C_b=0.0, C_W=1.0, L=L, activation="tanh", **rates)[1][-1]
    lam = np.linalg.eigvalsh(np.asarray(Th[:2, :2]))
    alg = GD(float(0.5 / lam[-1]), steps)
    r = pdlt.learning.trained_mean_correction_mlp(xA, yA[:, 0], xD, L=L, algorithm=alg, parts=True, C_b=0.0,
                                                  C_W=1.0, activation="tanh", **rates)
    pred = np.asarray(r["dntk"] + r["ddntk"])
    rows = _gd_motion_rows(xA, yA, xD, widths, S, seed0, L, alg, rates)
    for d in range(2):
        a, _, sa, _, _ = pdlt.learning.fit_inverse_width(widths, rows[:, 0, d], rows[:, 1, d])
        assert abs(a - pred[d]) < Z * sa, (d, a, sa, pred[d])
        assert Z * sa < abs(pred[d])
    a0, _, sa0, _, _ = pdlt.learning.fit_inverse_width(widths, rows[:, 0, 0], rows[:, 1, 0])
    assert abs(a0 - float(r["dntk"][0])) > Z * sa0            # the dNTK alone is rejected


def _sym_ntk_tensors(N, seed=9):
    k = jax.random.key(seed)
    r = lambda i, s: 0.3 * jax.random.normal(jax.random.fold_in(k, i), s)  # noqa: E731
    A, B, D, F = (r(i, (N,) * 4) for i in range(4))
    H1, G1 = r(5, (N, N)), r(6, (N, N))
    return dict(A=A, B=B, D=D, F=F, H1=H1 + H1.T, G1=G1 + G1.T)


def test_cov_ntk_part_of_one_fixed_step_is_the_bilinear_closed_form():
    """One step with a fixed κ leaves F0 = z_D − Ĥ_DA κ (z_A − y), bilinear in (Ĥ, z): its covariance to
    order 1/n written out by hand (with the tensors symmetrized as their definitions are) equals the NTK
    part of trained_cov_correction_steps."""
    N, ntr = 4, 2
    Theta, K, t = _random_tensors(N, seed=3)
    ntk = _sym_ntk_tensors(N)
    y = jnp.array([0.6, -0.8])
    kap = jnp.linalg.inv(Theta[:ntr, :ntr])
    res = pdlt.learning.trained_cov_correction_steps(Theta, K, y, ntr, kappa=kap, steps=1, parts=True, **ntk, **t)
    A, B, D, F, H1, G1 = (ntk[k] for k in ("A", "B", "D", "F", "H1", "G1"))
    C = A + jnp.einsum("acbd->abcd", B) + jnp.einsum("adbc->abcd", B)
    C = 0.5 * (C + jnp.einsum("abcd->cdab", C))
    C = 0.5 * (C + jnp.einsum("abcd->bacd", C))
    C = 0.5 * (C + jnp.einsum("abcd->abdc", C))
    DF = D + jnp.einsum("acbd->abcd", F) + jnp.einsum("adbc->abcd", F)
    DF = 0.5 * (DF + jnp.einsum("abcd->bacd", DF))
    DF = 0.5 * (DF + jnp.einsum("abcd->abdc", DF))
    L0 = jnp.concatenate([-Theta[ntr:, :ntr] @ kap, jnp.eye(N - ntr)], axis=1)
    X = (jnp.einsum("dc,ab,xacb->dx", L0, kap, DF[ntr:, :ntr, :, :ntr])
         + jnp.einsum("dc,ab,xa,cb->dx", L0, kap, H1[ntr:, :ntr], K[:, :ntr]))
    ref = (L0 @ G1 @ L0.T - X - X.T
           + jnp.einsum("ab,ge,xayg,be->xy", kap, kap, C[ntr:, :ntr, ntr:, :ntr], K[:ntr, :ntr] + jnp.outer(y, y)))
    np.testing.assert_allclose(res["ntk"], ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res["ddntk_II"], 0.0, atol=1e-12)
    np.testing.assert_allclose(res["total"], res["total"].T, atol=1e-12)


def test_variance_last_layer_only_is_the_kernel_part():
    """Trained in its last layer only, the variance shift has no dNTK or ddNTK part."""
    xA, yA, xD = _task2()
    kw = dict(C_b=0.1, C_W=1.5, activation="tanh", lambda_b=[0.0, 0.5], lambda_W=[0.0, 1.0])
    rs = pdlt.learning.trained_variance_correction_depth2(xA, yA[:, 0], xD, algorithm=("leap-fixed", GD(0.4, 300)),
                                                          parts=True, **kw)
    for r in rs.values():
        for k in ("dntk", "ddntk_I", "ddntk_II"):
            np.testing.assert_allclose(r[k], 0.0, atol=1e-12)
        np.testing.assert_allclose(r["total"], r["ntk"], atol=1e-12)
        assert float(jnp.max(jnp.abs(r["ntk"]))) > 1e-3
    with pytest.raises(pdlt.PDLTValueError, match="activation"):
        pdlt.learning.trained_variance_correction_depth2(xA[:1], yA[:1, 0], xD, C_b=0.0, C_W=2.0, activation="relu")


@pytest.mark.slow
def test_leap_variance_shift_against_trained_tanh_ensembles():
    """Depth two, tanh, one fixed-κ leap: n·(Var z_T − Var z_own), fitted a + b/n over three widths, against
    the dNTK + ddNTK parts of the variance shift (4.5 SE); the prediction without the dNTK is rejected."""
    xA, yA, xD = _task2()
    x = jnp.concatenate([xA, xD])
    rates = dict(lambda_b=0.0, lambda_W=1.0)
    r = pdlt.learning.trained_variance_correction_depth2(xA, yA[:, 0], xD, parts=True, C_b=0.0, C_W=1.0,
                                                         activation="tanh", **rates)
    pred = np.asarray(r["total"] - r["ntk"])
    Th = pdlt.ntk_recursion(x, C_b=0.0, C_W=1.0, L=2, activation="tanh", **rates)[1][-1]
    kap = jnp.linalg.inv(Th[:2, :2])
    widths, S, rows = [16, 32, 64], 6000, []
    for i, n in enumerate(widths):
        P0 = pdlt.learning.init_ensemble(jax.random.key(60 + i), 3, [n, 1], C_b=0.0, C_W=1.0, n_nets=S)
        z0 = pdlt.learning.ensemble_apply(P0, x, "tanh")[:, :, 0]
        H0 = pdlt.learning.stacked_ntk(P0, x, "tanh", **rates)[:, 0, 0]
        own = np.asarray(z0[:, 2:] - jnp.einsum("sda,ab,sb->sd", H0[:, 2:, :2], kap, z0[:, :2] - yA[None, :, 0]))
        PT = pdlt.learning.giant_leap_ensemble(P0, xA, yA, activation="tanh", kappa=kap, **rates)
        zT = np.asarray(pdlt.learning.ensemble_apply(PT, xD, "tanh")[:, :, 0])
        infl = n * ((zT - zT.mean(0)) ** 2 - (own - own.mean(0)) ** 2) * S / (S - 1)
        rows.append((infl.mean(0), infl.std(0, ddof=1) / np.sqrt(S)))
    rows = np.array(rows)
    for d in range(2):
        a, _, sa, _, _ = pdlt.learning.fit_inverse_width(widths, rows[:, 0, d], rows[:, 1, d])
        assert abs(a - pred[d]) < Z * sa, (d, a, sa, pred[d])
        assert abs(a - float(r["ddntk"][d])) > Z * sa          # the dNTK part is resolved
