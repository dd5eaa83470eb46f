"""Multi-input leading-order NTK statistics (pdlt.theory.ntk_statistics): symmetries, first layer, deep linear
closed forms, the single-input recursions as N = 1, the domain of the exact ReLU recursions, and Monte Carlo."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdlt
from pdlt.theory import chi_parallel, dense_expectation, h_coefficient

X2 = np.array([[1.0, 0.2, -0.5], [0.3, -1.0, 0.8]])
X3 = np.array([[1.0, 0.2, -0.5], [0.3, -1.0, 0.8], [-0.6, 0.4, 0.9]])


def _sym_err(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


@pytest.mark.parametrize("act,x", [("relu", X2), ("tanh", X3), ("gelu", X2)])
def test_index_symmetries_and_first_layer(act, x):
    s = pdlt.theory.ntk_statistics(x, C_b=0.1, C_W=1.5, L=4, activation=act, lambda_b=0.5,
                                   lambda_W=1.0)
    for q in ("V", "D", "F", "A", "B", "G1", "H1"):
        assert float(jnp.max(jnp.abs(getattr(s, q)[0]))) == 0.0          # layer 1 is exactly Gaussian
    V, D, F, A, B = (np.asarray(getattr(s, q)[-1]) for q in "VDFAB")
    for T in (V, A):
        assert _sym_err(T, T.transpose(1, 0, 2, 3)) < 1e-13 and _sym_err(T, T.transpose(2, 3, 0, 1)) < 1e-13
    assert _sym_err(D, D.transpose(1, 0, 2, 3)) < 1e-13 and _sym_err(D, D.transpose(0, 1, 3, 2)) < 1e-13
    assert _sym_err(F, F.transpose(2, 3, 0, 1)) < 1e-13                  # neuron swap
    assert _sym_err(B, B.transpose(2, 3, 0, 1)) < 1e-13 and _sym_err(B, B.transpose(1, 0, 3, 2)) < 1e-13
    for q in ("K", "Theta", "G1", "H1"):
        M = np.asarray(getattr(s, q)[-1])
        assert np.allclose(M, M.T, rtol=0, atol=1e-14 * max(1.0, np.abs(M).max()))


def test_deep_linear_closed_forms():
    """σ(z) = z, C_b = 0, C_W = 1: K = K1, Θ^(ℓ) = Θ1 + (ℓ-1)(λ_b + λ_W K), V = (ℓ-1)S with
    S_1234 = K13K24 + K14K23, D = λ_W S ℓ(ℓ-1)/2, F_1324 = K34 Σ_{m<ℓ} Θ^(m)_12, B_1324 = Σ_{m<ℓ} Θ^(m)_12 Θ^(m)_34,
    A = λ_W² S [ℓ(ℓ-1)/2 + (ℓ-2)(ℓ-1)ℓ/3], G1 = H1 = 0 (summing the recursions with Φ = K, Ψ = 1)."""
    lb, lw, L = 0.7, 1.3, 7
    s = pdlt.theory.ntk_statistics(X3, C_b=0.0, C_W=1.0, L=L, activation="linear", lambda_b=lb, lambda_W=lw)
    K = X3 @ X3.T / 3
    S = np.einsum("ac,bd->abcd", K, K) + np.einsum("ad,bc->abcd", K, K)
    Th = [lb + lw * K + m * (lb + lw * K) for m in range(L)]
    # the three-variable four-point averages factor K + 1e-12 tr(K)/N (psd_factor's jitter): absolute
    # errors ~1e-12 |K|^2 per layer, so atol = 1e-10 x the scale of each tensor
    tol = lambda T: dict(rtol=1e-10, atol=1e-10 * max(1.0, float(np.abs(T).max())))  # noqa: E731
    for ell in range(1, L + 1):
        i = ell - 1
        np.testing.assert_allclose(s.K[i], K, rtol=1e-13)
        np.testing.assert_allclose(s.Theta[i], Th[i], rtol=1e-13)
        np.testing.assert_allclose(s.V[i], (ell - 1) * S, **tol(S))
        np.testing.assert_allclose(s.D[i], lw * S * ell * (ell - 1) / 2, **tol(L * L * S))
        F = sum(np.einsum("ab,cd->acbd", Th[m], K) for m in range(ell - 1)) if ell > 1 else 0 * S
        B = sum(np.einsum("ab,cd->acbd", Th[m], Th[m]) for m in range(ell - 1)) if ell > 1 else 0 * S
        np.testing.assert_allclose(s.F[i], F, **tol(F))
        np.testing.assert_allclose(s.B[i], B, **tol(B))
        np.testing.assert_allclose(s.A[i], lw**2 * S * (ell * (ell - 1) / 2 + (ell - 2) * (ell - 1) * ell / 3),
                                   **tol(L**3 * S))
        assert float(jnp.max(jnp.abs(s.G1[i]))) < 1e-10 and float(jnp.max(jnp.abs(s.H1[i]))) < 1e-10


def _scalar_reference(x, C_b, C_W, L, act, lb, lw):
    """The book's single-input recursions written out as scalars (an independent oracle for N = 1)."""
    a = pdlt.get_activation(act)
    s, ds = a.sigma, a.dsigma
    g0 = float(np.sum(x * x) / x.size)
    K, H, V, A, B, D, F = C_b + C_W * g0, lb + lw * g0, 0.0, 0.0, 0.0, 0.0, 0.0
    rows = [(K, V, H, A, B, D, F)]
    E = lambda f, K: float(dense_expectation(f, K))  # noqa: E731
    for _ in range(L - 1):
        s2, s4 = E(lambda z: s(z) ** 2, K), E(lambda z: s(z) ** 4, K)
        d2, d4 = E(lambda z: ds(z) ** 2, K), E(lambda z: ds(z) ** 4, K)
        s2d2 = E(lambda z: (s(z) * ds(z)) ** 2, K)
        cp, ct, h = float(chi_parallel(a, K, C_W=C_W)), C_W * d2, float(h_coefficient(a, K, C_W=C_W))
        Vn = C_W**2 * (s4 - s2**2) + cp**2 * V
        cross = C_W**2 * H * (s2d2 - s2 * d2) + 2 * h * cp * H * V + cp * ct * D
        An = ((lw / C_W) ** 2 * Vn + 2 * (lw / C_W) * cross + C_W**2 * (d4 - d2**2) * H**2
              + 4 * h**2 * H**2 * V + 4 * h * ct * H * D + ct**2 * A)
        K, H, V, A, B, D, F = (C_b + C_W * s2, lb + lw * s2 + ct * H, Vn, An, C_W**2 * d4 * H**2 + ct**2 * B,
                               (lw / C_W) * Vn + cross, C_W**2 * s2d2 * H + cp**2 * F)
        rows.append((K, V, H, A, B, D, F))
    return np.array(rows)


@pytest.mark.parametrize("act,C_b,C_W", [("relu", 0.0, 2.0), ("tanh", 0.1, 1.2), ("gelu", 0.05, 1.5)])
def test_single_input_is_the_N1_case(act, C_b, C_W):
    x = np.array([1.0, 0.5, -0.3])
    ref = _scalar_reference(x, C_b, C_W, 6, act, 0.7, 1.3)
    s = pdlt.ntk_fluctuations(x, C_b=C_b, C_W=C_W, L=6, activation=act, lambda_b=0.7, lambda_W=1.3)
    got = np.stack([np.asarray(getattr(s, q)) for q in ("K", "V", "H", "A", "B", "D", "F")], 1)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13 * np.abs(ref).max())


def test_per_layer_rates_and_errors():
    s = pdlt.theory.ntk_statistics(X2, C_b=0.0, C_W=2.0, L=3, lambda_b=(1.0, 0.0, 0.0), lambda_W=(1.0, 0.0, 0.0))
    # with the rates of layers 2, 3 off, Θ is Θ1 transported: Θ' = C_W Θ ∘ Ψ
    Psi = pdlt.gauss.derivative_kernel_map("relu", s.K[0])
    np.testing.assert_allclose(s.Theta[1], 2.0 * s.Theta[0] * Psi, rtol=1e-12)
    with pytest.raises(pdlt.PDLTValueError, match="x"):
        pdlt.theory.ntk_statistics(np.ones(3), C_b=0.0, C_W=2.0, L=3)
    with pytest.raises(pdlt.PDLTValueError, match="lambda_b"):
        pdlt.theory.ntk_statistics(X2, C_b=0.0, C_W=2.0, L=3, lambda_b=(1.0, 1.0))
    with pytest.raises(pdlt.PDLTValueError, match="activation"):
        pdlt.theory.ntk_statistics(X2, C_b=0.0, C_W=2.0, L=3, activation="step")


def test_relu_exact_domain():
    """relu_ntk_fluctuations_exact is exact at n = 1 with λ_b = 0 in the hidden layers, and is not with λ_b > 0."""
    x = np.ones(4)
    key = jax.random.key(7)
    for lb, expect_ok in (((1.0, 0.0, 0.0, 0.0), True), (1.0, False)):
        smp = pdlt.ensembles.ntk_conditional_samples(key, x, n=1, L=4, C_b=0.0, C_W=2.0, lambda_b=lb, lambda_W=1.0,
                                           n_nets=200000, progress=False)
        m, se = (float(v[-1]) for v in pdlt.mean_and_se(smp["mu"]))
        th = float(pdlt.theory.relu_ntk_fluctuations_exact(x, n=1, L=4, lambda_b=lb,
                                                           lambda_W=1.0).H[-1])
        assert (abs(m - th) < 4.5 * se) == expect_ok, (lb, m, se, th)


def test_layer2_mc_exact_at_any_width():
    """Layer 2 statistics are exact at any width (layer-1 neurons iid Gaussian, Ĥ^(1) deterministic)."""
    n, S = 8, 6000
    kw = dict(C_b=0.2, C_W=1.5, activation="tanh", lambda_b=0.5, lambda_W=1.0)
    th = pdlt.theory.ntk_statistics(X2, L=2, **kw)
    est = pdlt.ensembles.ntk_statistics_estimates(pdlt.ensembles.ntk_conditional_samples_multi(
        jax.random.key(3), X2, n=n, L=2, n_nets=S, progress=False, **kw))
    for q in "VDFAB":
        m, se = (np.asarray(v[-1]) for v in est[q])
        z = np.abs(m - np.asarray(getattr(th, q)[-1])) / np.maximum(se, 1e-300)
        assert float(z.max()) < 4.5, (q, float(z.max()))


@pytest.mark.slow
@pytest.mark.parametrize("act,C_b,C_W,x", [("tanh", 0.1, 1.2, X2), ("relu", 0.2, 1.7, X3)])
def test_layer3_mc_intercepts(act, C_b, C_W, x):
    """n·(statistic) at n = 8, 16, 32, fitted a + b/n: intercepts within 4.5 SE of the recursion (layer 3)."""
    kw = dict(C_b=C_b, C_W=C_W, activation=act, lambda_b=0.5, lambda_W=1.0)
    th = pdlt.theory.ntk_statistics(x, L=3, **kw)
    ns = (8, 16, 32)
    est = {n: pdlt.ensembles.ntk_statistics_estimates(pdlt.ensembles.ntk_conditional_samples_multi(
        jax.random.fold_in(jax.random.key(11), n), x, n=n, L=3, n_nets=4000, progress=False, **kw)) for n in ns}
    X = np.stack([np.ones(3), 1 / np.array(ns)], 1)
    for q in "VDFAB":
        T = np.asarray(getattr(th, q)[-1]).ravel()
        for k in range(T.size):
            v = [float(np.asarray(est[n][q][0][-1]).ravel()[k]) for n in ns]
            s = [float(np.asarray(est[n][q][1][-1]).ravel()[k]) for n in ns]
            c, cov = pdlt.stats.fit_linear(X, v, s)
            assert abs(c[0] - T[k]) < 4.5 * np.sqrt(cov[0, 0]), (q, k, c[0], T[k], np.sqrt(cov[0, 0]))
