"""Beyond the book, items 4-6: deep linear dynamics (Saxe), length distortion (Hanin-Jeong-Rolnick),
shaped attention (Noci et al.). Exact identities first, then statistical checks with controls."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import Z

import pdlt
from pdlt.topics.internals import deep_linear_dynamics as dld


def _frames(key, n_out, n_in, M):
    k1, k2 = jax.random.split(key)
    return dld._orthonormal(k1, n_out, M, jnp.float64), dld._orthonormal(k2, n_in, M, jnp.float64)


# ----------------------------------------------------------------- Saxe: exact solutions
def test_logistic_solves_its_ode():
    """u(t) = s e^{2st}/(e^{2st} - 1 + s/u0) satisfies tau du/dt = 2u(s - u) and u(0) = u0."""
    s, u0, tau = 2.5, 1e-3, 7.0
    t = jnp.linspace(0.0, 20.0, 201)
    u = pdlt.topics.saxe_logistic(t, s, u0, tau)
    du = jax.vmap(jax.grad(lambda x: pdlt.topics.saxe_logistic(x, s, u0, tau)))(t)
    np.testing.assert_allclose(tau * du, 2 * u * (s - u), rtol=1e-10, atol=1e-14)
    assert float(u[0]) == pytest.approx(u0, rel=1e-12)
    th = pdlt.topics.saxe_half_time(s, u0, tau)
    assert float(pdlt.topics.saxe_logistic(th, s, u0, tau)) == pytest.approx(s / 2, rel=1e-12)


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_deep_ode_matches_quadrature(depth):
    """RK4 solution of tau du/dt = D u^{2-2/D}(s-u) against the exact t(u) by quadrature (and D=2 logistic)."""
    s, u0, tau = 1.5, 0.05, 1.0
    t = np.linspace(0.0, 4.0, 201)
    u = np.asarray(pdlt.topics.deep_mode_ode(t, s, u0, depth, tau, substeps=20))
    for i in (25, 50, 100):
        assert pdlt.topics.deep_mode_time(u[i], s, u0, depth, tau) == pytest.approx(t[i], rel=1e-8)
    if depth == 2:
        np.testing.assert_allclose(u, pdlt.topics.saxe_logistic(t, s, u0, tau), rtol=1e-9)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_gd_on_aligned_weights_is_the_scalar_map(depth):
    """Full-matrix GD from aligned balanced weights equals a_{k+1} = a_k + eta a_k^{D-1}(s - a_k^D) exactly."""
    s = np.array([2.0, 1.0, 0.4])
    U, V = _frames(jax.random.key(0), 5, 6, 3)
    T = U @ jnp.diag(s) @ V.T
    Ws = pdlt.topics.aligned_deep_linear_init(jax.random.key(1), U, V, 0.01, depth, hidden=7)
    Ps, losses, _ = pdlt.topics.deep_linear_gd(Ws, T, 0.05, 200, every=1)
    u = pdlt.topics.mode_strengths(Ps, U, V)
    np.testing.assert_allclose(u, pdlt.topics.aligned_gd_map(0.01, s, 0.05, depth, 200), rtol=1e-10, atol=1e-13)
    # off-diagonal couplings stay zero: the product is U diag(u) V^T
    np.testing.assert_allclose(Ps[-1], U @ jnp.diag(u[-1]) @ V.T, atol=1e-12)
    assert losses[-1] < losses[0]


def test_gd_converges_to_logistic_at_first_order_in_eta():
    """GD is the Euler scheme: the max deviation from the logistic halves when eta halves."""
    s, u0 = np.array([2.0, 1.0]), 1e-2
    dev = []
    for eta, steps in ((2e-2, 400), (1e-2, 800)):
        u = pdlt.topics.aligned_gd_map(u0, s, eta, 2, steps)
        t = np.arange(steps + 1)
        dev.append(float(np.max(np.abs(u - pdlt.topics.saxe_logistic(t[:, None], s, u0, 1 / eta)))))
    assert dev[0] / dev[1] == pytest.approx(2.0, rel=0.1)


def test_orthogonal_product_is_an_isometry():
    Ws = pdlt.topics.random_deep_linear_init(jax.random.key(3), 6, 10, "orthogonal")
    P = pdlt.topics.deep_linear_product(Ws)
    np.testing.assert_allclose(P.T @ P, np.eye(6), atol=1e-12)


def test_gaussian_product_log_norm_statistics():
    """ln||P u||^2 for Gaussian weights: mean and variance against the exact digamma/trigamma sums."""
    n, D, M = 8, 6, 4000
    key = jax.random.key(4)
    Ws = jax.vmap(lambda i: pdlt.topics.random_deep_linear_init(jax.random.fold_in(key, i), n, D, "gaussian"))(jnp.arange(M))
    x = jax.vmap(lambda W: jnp.log(jnp.sum(pdlt.topics.deep_linear_product(W)[:, 0] ** 2)))(Ws)
    mean, var = pdlt.topics.gaussian_product_log_norm(n, D)
    m, se = pdlt.mean_and_se(x)
    v, sev = pdlt.variance_and_se(x)
    assert abs(float(m) - mean) < Z * float(se)
    assert abs(float(v) - var) < Z * float(sev)
    assert abs(float(v) - 0.0) > Z * float(sev)  # control: an orthogonal product has zero spread


def test_saxe_validation():
    with pytest.raises(pdlt.PDLTValueError, match="u0"):
        pdlt.topics.saxe_logistic(1.0, 1.0, 2.0)
    with pytest.raises(pdlt.PDLTValueError, match="kind"):
        pdlt.topics.random_deep_linear_init(jax.random.key(0), 4, 2, "uniform")
    with pytest.raises(pdlt.PDLTValueError, match="every"):
        pdlt.topics.deep_linear_gd((jnp.eye(2),), jnp.eye(2), 0.1, 10, every=3)
    with pytest.raises(pdlt.PDLTValueError, match="hidden"):
        pdlt.topics.aligned_deep_linear_init(jax.random.key(0), jnp.eye(3), jnp.eye(3), 0.1, 2,
                                             hidden=2)
    with pytest.raises(pdlt.PDLTValueError, match="`t`"):
        pdlt.topics.deep_mode_ode([1.0, 2.0], 1.0, 0.1, 2)


def _square_target(key, n):
    U, V = _frames(key, n, n, n)
    return U @ jnp.diag(jnp.linspace(0.5, 3.0, n)) @ V.T


def test_nested_learning_times_single_depth_is_learning_times():
    # with one depth the nested draw is the plain orthogonal draw under the key learning_times folds in
    key, T = jax.random.key(3), _square_target(jax.random.key(4), 4)
    a = pdlt.topics.nested_orthogonal_learning_times(jax.random.fold_in(key, 4), T, [4], eta0=0.1, steps=400,
                                              n_seeds=3)
    b = pdlt.topics.learning_times(key, T, [4], kind="orthogonal", eta0=0.1, steps=400, n_seeds=3)
    np.testing.assert_array_equal(a, b)


def test_nested_learning_times_depth_one_is_exact_regression():
    # D = 1 shares P = O_2 O_1 with D = 2; at D = 1 gradient descent contracts T - P by (1 - eta0) per
    # step, so the loss is (1 - eta0)^(2t) L_0 and the crossing time has a closed form
    key, n, eta0 = jax.random.key(5), 4, 0.1
    T = _square_target(jax.random.key(6), n)
    t = pdlt.topics.nested_orthogonal_learning_times(key, T, [1, 2], eta0=eta0, steps=300,
                                                     n_seeds=4)
    O = dld._init_batch(key, n, 2, "orthogonal", 1.0, 4)
    P = O[1] @ O[0]
    L0 = 0.5 * np.sum((np.asarray(T) - np.asarray(P)) ** 2, axis=(1, 2))
    t_exact = np.log(1e-2 * 0.5 * float(np.sum(np.asarray(T) ** 2)) / L0) / (2 * np.log(1 - eta0))
    # the runner interpolates linearly between integer steps of a convex decreasing curve
    assert np.all(np.abs(t[:, 0] - t_exact) < 1.0)
    assert t.shape == (4, 2)


def test_nested_learning_times_validation():
    T = jnp.eye(3)
    with pytest.raises(pdlt.PDLTValueError, match="divide"):
        pdlt.topics.nested_orthogonal_learning_times(jax.random.key(0), T, [2, 3], steps=10)
    with pytest.raises(pdlt.PDLTValueError, match="square"):
        pdlt.topics.nested_orthogonal_learning_times(jax.random.key(0), jnp.ones((2, 3)), [1],
                                                     steps=10)


# ----------------------------------------------------------------- length distortion
def test_straight_line_through_linear_net():
    """The image of a segment under a linear net x -> M x has length ||M (b - a)|| (jvp speeds, exactly)."""
    params = pdlt.ensembles.init_mlp(jax.random.key(5), 3, (7, 5, 2), C_W=1.0)
    a, b = jnp.array([0.3, -1.0, 2.0]), jnp.array([1.0, 0.5, -0.5])
    t = jnp.linspace(0, 1, 11)
    x = a + t[:, None] * (b - a)
    dx = jnp.broadcast_to(b - a, x.shape)
    speeds = pdlt.topics.curve_speeds(params, x, dx, activation="linear")
    Mx = pdlt.ensembles.mlp_apply(params, jnp.stack([a, b]), activation="linear")
    np.testing.assert_allclose(speeds[-1], jnp.linalg.norm(Mx[1] - Mx[0]), rtol=1e-12)


def test_relu_speed_matches_finite_difference():
    params = pdlt.ensembles.init_mlp(jax.random.key(6), 2, (9, 9, 3), C_W=2.0)
    x, dx, dt, _ = pdlt.topics.circle_curve(2, 16)
    v = pdlt.topics.curve_speeds(params, x, dx)[-1]
    h = 1e-7
    fd = jnp.linalg.norm(pdlt.ensembles.mlp_apply(params, x + h * dx) - pdlt.ensembles.mlp_apply(params, x - h * dx), axis=-1) / (2 * h)
    np.testing.assert_allclose(v, fd, rtol=1e-5)


def test_exact_moments_closed_forms():
    """E||Ju||^2 = C_out n_L / n0 at C_W = 2; E||Ju||^4 ratio (1 + 2/n_L) prod (1 + 5/n); depth 1 is chi_n."""
    n0, widths = 3, (10, 12, 8, 4)
    m1, m2, m4 = pdlt.topics.jacobian_norm_moments(n0, widths)
    assert m2 == pytest.approx(4 / 3, rel=1e-12)
    assert m4 / m2**2 == pytest.approx((1 + 2 / 4) * (1 + 5 / 10) * (1 + 5 / 12) * (1 + 5 / 8), rel=1e-12)
    assert m1 < np.sqrt(m2)
    from scipy.special import gammaln
    m1_1 = pdlt.topics.jacobian_norm_moments(4, (6,))[0]
    assert m1_1 == pytest.approx(np.sqrt(2 / 4) * np.exp(gammaln(3.5) - gammaln(3.0)), rel=1e-12)


def test_law_sampler_matches_exact_moments():
    widths = (16, 16, 16, 2)
    s = pdlt.topics.sample_jacobian_norm_law(jax.random.key(7), 2, widths, 100000)
    m1, m2, _ = pdlt.topics.jacobian_norm_moments(2, widths)
    mean_sqrt, se1 = pdlt.mean_and_se(jnp.sqrt(s))
    mean, se2 = pdlt.mean_and_se(s)
    assert abs(float(mean_sqrt) - m1) < Z * float(se1)
    assert abs(float(mean) - m2) < Z * float(se2)
    mu, var = pdlt.topics.jacobian_log_norm_moments(2, widths)
    v, sev = pdlt.variance_and_se(jnp.log(s[s > 0]))  # the exact moments condition on no dead layer
    assert abs(float(v) - var) < Z * float(sev)


def test_log_variance_per_layer_is_five_over_n():
    """The exact per-layer variance of ln||Ju||^2 is 5/n + O(1/n^2): the book's ReLU constant 5."""
    n = 400
    v1 = pdlt.topics.jacobian_log_norm_moments(2, (n, n))[1]
    v2 = pdlt.topics.jacobian_log_norm_moments(2, (n, n, n))[1]
    assert n * (v2 - v1) == pytest.approx(5.0, rel=0.02)


@pytest.mark.slow
def test_network_distortion_matches_exact_law():
    """Real networks against the exact mean distortion; control: the naive 'length preserved' value."""
    x, dx, _, _ = pdlt.topics.circle_curve(2, 8)
    widths = (8,) * 8 + (2,)
    r = pdlt.topics.length_distortion_ensemble(jax.random.key(8), x, dx, widths=widths, n_nets=2000, progress=False)
    th = pdlt.topics.layer_moments(2, widths)
    m, se = pdlt.mean_and_se(r[:, -1, 0])
    assert abs(float(m) - th[-1, 0]) < Z * float(se)
    assert abs(float(m) - np.sqrt(th[-1, 1])) > Z * float(se)  # control: no shrinkage


def test_length_validation():
    with pytest.raises(pdlt.PDLTValueError, match="n0"):
        pdlt.topics.circle_curve(1, 8)
    with pytest.raises(pdlt.PDLTValueError, match="widths"):
        pdlt.topics.jacobian_norm_moments(2, (4, 0))
    with pytest.raises(pdlt.PDLTValueError, match="C_W"):
        pdlt.topics.jacobian_norm_moments(2, (4, 2), C_W=-1.0)
    with pytest.raises(pdlt.PDLTValueError, match="shape"):
        pdlt.topics.length_distortion_ensemble(jax.random.key(0), jnp.zeros((4, 2)), jnp.zeros((3,
                                                                                                2)),
                                        widths=(4, 2), n_nets=2)


# ----------------------------------------------------------------- shaped attention
def test_attention_shapes_and_rows():
    key = jax.random.key(9)
    params = pdlt.topics.init_attention_stack(key, 12, 5, 3)
    Y = jax.random.normal(jax.random.key(10), (4, 12))
    out = pdlt.topics.attention_stack(params, Y, lam=0.8, gamma=0.6)
    assert out.shape == (4, 4, 12)
    A = pdlt.topics.attention_matrix(Y, *params[0][:2], n=12, shaped=True)
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=1e-12)  # identity + softmax - 1/m: rows sum to 1
    A0 = pdlt.topics.attention_matrix(Y, *params[0][:2], n=12, shaped=False)
    assert bool(jnp.all(A0 > 0)) and np.allclose(A0.sum(axis=1), 1.0)
    # shaped attention -> identity as the width (temperature) grows
    A_big = pdlt.topics.attention_matrix(Y, *params[0][:2], n=10**8, shaped=True)
    np.testing.assert_allclose(A_big, np.eye(4), atol=1e-3)


def test_attention_validation():
    with pytest.raises(pdlt.PDLTValueError, match="gamma"):
        pdlt.topics.attention_stack(pdlt.topics.init_attention_stack(jax.random.key(0), 4, 2, 1), jnp.ones((2, 4)),
                             lam=1.0, gamma=-0.1)
    with pytest.raises(pdlt.PDLTValueError, match="m >= 2"):
        pdlt.topics.attention_stack((), jnp.ones((1, 4)), lam=1.0, gamma=0.0)
    with pytest.raises(pdlt.PDLTValueError, match="width"):
        pdlt.topics.attention_gram_chain(jax.random.key(0), np.eye(4), n=3, n_k=3, L=2, lam=1.0,
                                         gamma=0.1)
    with pytest.raises(pdlt.PDLTValueError, match="positive definite"):
        pdlt.topics.attention_gram_chain(jax.random.key(0), np.ones((3, 3)), n=8, n_k=3, L=2, lam=1.0, gamma=0.1)
    with pytest.raises(pdlt.PDLTValueError, match="rho0"):
        pdlt.topics.equicorrelated_tokens(3, 1.0)


def test_mean_token_correlation():
    G = pdlt.topics.equicorrelated_tokens(5, -0.2)
    assert float(pdlt.topics.mean_token_correlation(G)) == pytest.approx(-0.2, rel=1e-12)


def test_gram_chain_is_exact_without_attention_noise():
    """With gamma = 0 the chain is the identity map on the Gram matrix (deterministic)."""
    G0 = pdlt.topics.equicorrelated_tokens(3, 0.4)
    G = pdlt.topics.attention_gram_chain(jax.random.key(11), G0, n=16, n_k=4, L=5, lam=1.0, gamma=0.0, n_nets=2)
    np.testing.assert_allclose(G, np.broadcast_to(G0, G.shape), rtol=1e-10)


@pytest.mark.parametrize("shaped", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_gram_chain_matches_explicit_weights(shaped):
    """The conditional Gram sampler and explicit n x n weights give the same law of rho (mean, variance)."""
    n, n_k, L, M = 8, 4, 4, 1000
    G0 = pdlt.topics.equicorrelated_tokens(3, 0.2)
    lam = gamma = np.sqrt(0.5)
    Ge = pdlt.topics.attention_explicit_grams(jax.random.key(12), G0, n=n, n_k=n_k, L=L, lam=lam, gamma=gamma,
                                       shaped=shaped, n_nets=M)
    a = pdlt.topics.token_correlations(Ge)[:, 0, 1]
    G = pdlt.topics.attention_gram_chain(jax.random.key(13), G0, n=n, n_k=n_k, L=L, lam=lam,
                                         gamma=gamma, shaped=shaped, n_nets=M)
    b = pdlt.topics.token_correlations(G[:, -1])[:, 0, 1]
    (ma, sa), (mb, sb) = pdlt.mean_and_se(a), pdlt.mean_and_se(b)
    assert abs(float(ma - mb)) < Z * float(np.hypot(sa, sb))
    (va, sva), (vb, svb) = pdlt.variance_and_se(a), pdlt.variance_and_se(b)
    assert abs(float(va - vb)) < Z * float(np.hypot(sva, svb))
    # control: a different depth is distinguishable with the same rule
    c = pdlt.topics.token_correlations(G[:, 1])[:, 0, 1]
    (mc, sc) = pdlt.mean_and_se(c)
    (vc, svc) = pdlt.variance_and_se(c)
    assert max(abs(float(mc - ma)) / float(np.hypot(sa, sc)), abs(float(vc - va)) / float(np.hypot(sva, svc))) > Z


# ----------------------------------------------------------------- chapters
@pytest.mark.parametrize("stem", ["beyond4_saxe_dynamics", "beyond5_length_distortion", "beyond6_shaped_transformer"])
def test_full_scale_parameters_are_valid(stem):
    """Every key of book/params/<id>.full.yaml is a parameter of the chapter and obeys the shared rules."""
    from conftest import ROOT

    from pdlt.book.internals import params as _params
    from pdlt.run import parameters_of, resolve_values

    path = ROOT / "book" / f"{stem}.md"
    specs = parameters_of(path)
    values = resolve_values(path, specs, scale="full")
    _params.validate(values, specs)
    assert values != {k: s.default for k, s in specs.items()}
