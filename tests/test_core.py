"""Tests of the core: Gaussian averages, criticality, the K/V/G1 recursions, exact results, samplers."""
from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import Z
from jax.scipy.special import erf

import pdlt
from pdlt.gauss.internals.activations import _erf_dkernel, _erf_kernel

K2 = jnp.array([[1.0, 0.6], [0.6, 0.8]])


# ----------------------------------------------------------------- Gaussian averages
def test_multivariate_quadrature_is_exact_for_polynomials():
    K = jnp.array([[1.3, 0.4, -0.2], [0.4, 0.9, 0.3], [-0.2, 0.3, 1.1]])
    got = pdlt.gauss.gaussian_expectation_n(lambda z: z[:, 0] ** 2 * z[:, 1] * z[:, 2], K, deg=8)
    assert float(got) == pytest.approx(pdlt.gauss.wick_expectation(K, (0, 0, 1, 2)), rel=1e-12)
    T = pdlt.gauss.gaussian_moment_tensor(lambda z: z, K, 4, deg=8)
    assert float(T[0, 1, 2, 2]) == pytest.approx(pdlt.gauss.wick_expectation(K, (0, 1, 2, 2)),
                                                 rel=1e-12)


def test_erf_kernels_against_closed_forms():
    """Smooth activation: quadrature agrees with the closed forms to 1e-10."""
    act = pdlt.get_activation("erf")
    for f, closed in [(act.sigma, _erf_kernel), (act.dsigma, _erf_dkernel)]:
        quad = pdlt.gauss.gaussian_moment_tensor(f, K2, 2)
        exact = closed(K2[0, 0], K2[0, 1], K2[1, 1])
        assert abs(float(quad[0, 1] - exact)) < 1e-10
    assert abs(float(pdlt.kernel_map("erf", K2)[0, 1] - _erf_kernel(K2[0, 0], K2[0, 1], K2[1, 1]))) < 1e-14


def test_K_derivatives_by_stein_identity():
    """d^m<f>_K/dK^m = <f He_2m(z/sqrt K)>/(2K)^m against autodiff of the erf closed form."""
    g = lambda k: _erf_kernel(k, k, k)  # noqa: E731
    for m, ref in [(1, jax.grad(g)), (2, jax.grad(jax.grad(g)))]:
        got = pdlt.gauss.gaussian_expectation_dK(lambda z: erf(z) ** 2, 0.7, m)
        assert abs(float(got - ref(0.7))) < 1e-10
    # works without derivatives for kinked functions: d<relu^2>/dK = 1/2
    assert float(pdlt.gauss.gaussian_expectation_dK(lambda z: jnp.maximum(z, 0) ** 2, 1.3, 1)) == pytest.approx(0.5, abs=1e-12)


def test_polar_quadrature_exact_for_relu():
    relu = pdlt.get_activation("relu").sigma
    got = pdlt.gauss.scale_invariant_expectation2(lambda z: relu(z[:, 0]) * relu(z[:, 1]), K2, 2)
    assert float(got) == pytest.approx(float(pdlt.kernel_map("relu", K2)[0, 1]), rel=1e-13)
    lin = pdlt.gauss.scale_invariant_expectation2(lambda z: z[:, 0] ** 2 * z[:, 1] ** 2, K2, 4)
    assert float(lin) == pytest.approx(pdlt.gauss.wick_expectation(K2, (0, 0, 1, 1)), rel=1e-11)  # psd_factor jitter 1e-12
    # <relu(z)^4> = 3K^2/2 on the diagonal
    d = pdlt.gauss.scale_invariant_expectation2(lambda z: relu(z[:, 0]) ** 4, K2, 4)
    assert float(d) == pytest.approx(1.5 * float(K2[0, 0]) ** 2, rel=1e-11)


def test_psd_factor_handles_zero_kernel():
    assert float(pdlt.gauss.psd_factor(jnp.zeros((1, 1)))[0, 0]) == 0.0


# ----------------------------------------------------------------- criticality
@pytest.mark.parametrize("name,cb,cw", [("relu", 0.0, 2.0), ("linear", 0.0, 1.0), ("tanh", 0.0, 1.0),
                                        ("sin", 0.0, 1.0), ("erf", 0.0, math.pi / 4),
                                        ("leaky_relu", 0.0, 2 / 1.01)])
def test_critical_points_closed_forms(name, cb, cw):
    c = pdlt.critical_point(name)
    assert c.C_b == pytest.approx(cb, abs=1e-12) and c.C_W == pytest.approx(cw, rel=1e-12)


@pytest.mark.parametrize("name", ["gelu", "swish"])
def test_half_stable_points_are_critical(name):
    c = pdlt.critical_point(name)
    assert float(pdlt.theory.chi_parallel(name, c.K_star, C_W=c.C_W)) == pytest.approx(1.0,
                                                                                       abs=1e-9)
    assert float(pdlt.theory.chi_perp(name, c.K_star, C_W=c.C_W)) == pytest.approx(1.0, abs=1e-9)
    assert c.C_b + c.C_W * float(pdlt.theory.sigma_sq(name, c.K_star)) == pytest.approx(c.K_star,
                                                                                        abs=1e-9)
    if name == "gelu":
        assert c.K_star == pytest.approx((3 + math.sqrt(17)) / 2, abs=1e-9)


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "step"])
def test_no_criticality_raises_naming_the_activation(name):
    with pytest.raises(pdlt.PDLTValueError, match=f"'{name}' has no critical initialization"):
        pdlt.critical_point(name)


def test_susceptibilities_match_derivatives():
    K, cw = 0.7, 1.3
    num = (pdlt.theory.sigma_sq("tanh", K + 1e-5) - pdlt.theory.sigma_sq("tanh", K - 1e-5)) / 2e-5
    assert float(pdlt.theory.chi_parallel("tanh", K, C_W=cw)) == pytest.approx(cw * float(num),
                                                                               rel=1e-8)
    num = (pdlt.theory.chi_perp("tanh", K + 1e-5, C_W=cw) - pdlt.theory.chi_perp("tanh", K - 1e-5,
                                                                                 C_W=cw)) / 2e-5
    assert float(pdlt.theory.h_coefficient("tanh", K, C_W=cw)) == pytest.approx(0.5 * float(num),
                                                                                rel=1e-7)
    kz = pdlt.theory.kstar_zero_coefficients("tanh")
    assert (kz.a1, kz.b1) == pytest.approx((-2.0, -2.0), abs=1e-12)


def test_fixed_point_and_explosion():
    Ks = pdlt.theory.fixed_point("tanh", C_b=0.3, C_W=1.5)
    assert Ks == pytest.approx(0.3 + 1.5 * float(pdlt.theory.sigma_sq("tanh", Ks)), abs=1e-12)
    with pytest.raises(pdlt.PDLTValueError, match="explodes"):
        pdlt.theory.fixed_point("relu", C_b=0.0, C_W=2.5)


# ----------------------------------------------------------------- recursions and exact results
@pytest.mark.parametrize("name,nu", [("relu", 5.0), ("linear", 2.0), ("leaky_relu", None)])
def test_scale_invariant_vertex_is_linear_in_depth(name, nu):
    nu_lib = pdlt.theory.scale_invariant_nu(name)
    if nu is not None:
        assert nu_lib == pytest.approx(nu, rel=1e-14)
    c = pdlt.critical_point(name)
    f = pdlt.vertex_recursion(1.7, C_b=0.0, C_W=c.C_W, L=9, activation=name)
    np.testing.assert_allclose(f.V / f.K**2, nu_lib * np.arange(9), rtol=1e-12)
    np.testing.assert_allclose(f.G1, 0.0, atol=1e-14)


def test_tanh_recursion_reference_values():
    """Leading-order K, V/K^2, G1/K at criticality (quadrature values of pdlt-results.md §7)."""
    f = pdlt.vertex_recursion(1.0, C_b=0.0, C_W=1.0, L=16, activation="tanh")
    for ell, K, v, g in [(4, 0.16666, 1.806, -0.316), (8, 0.07448, 4.262, -1.291), (16, 0.03468, 9.370, -3.626)]:
        i = ell - 1
        assert float(f.K[i]) == pytest.approx(K, rel=2e-4)  # reference values have 4 digits
        assert float(f.V[i] / f.K[i] ** 2) == pytest.approx(v, rel=1e-3)
        assert float(f.G1[i] / f.K[i]) == pytest.approx(g, rel=2e-3)


def test_multi_input_recursion_reduces_to_single_input():
    for name in ("tanh", "relu"):
        c = pdlt.critical_point(name)
        multi = pdlt.theory.vertex_recursion_multi(jnp.array([[0.9, 0.3], [0.3, 1.1]]), C_b=0.0, C_W=c.C_W, L=6, activation=name)
        single = pdlt.vertex_recursion(0.9, C_b=0.0, C_W=c.C_W, L=6, activation=name)
        np.testing.assert_allclose(multi.V[:, 0, 0, 0, 0], single.V, rtol=1e-8, atol=1e-12)  # 2-D vs 1-D rule
        np.testing.assert_allclose(multi.G1[:, 0, 0], single.G1, rtol=1e-8, atol=1e-12)


def test_exact_moments_deep_linear_and_relu():
    n, L = 10, 6
    M = pdlt.theory.exact_metric_moments(1.2, C_W=1.0, widths=(n,) * L, activation="linear",
                                         order=3)
    assert M[-1, 1] == pytest.approx(1.2**2 * (1 + 2 / n) ** (L - 1), rel=1e-13)
    assert M[-1, 2] == pytest.approx(1.2**3 * ((1 + 2 / n) * (1 + 4 / n)) ** (L - 1), rel=1e-13)
    R = pdlt.theory.exact_metric_moments(1.0, C_W=2.0, widths=(n, n), activation="relu", order=3)
    assert R[1] == pytest.approx([1.0, 1 + 5 / n, 1 + 15 / n + 44 / n**2], rel=1e-13)
    V = pdlt.theory.exact_vertex(2.0, C_W=2.0, widths=(16,) * 8)
    np.testing.assert_allclose(V / 4, 16 * ((1 + 5 / 16) ** np.arange(8) - 1), rtol=1e-12)


def test_deep_linear_log_metric_large_width_limit():
    mean, var = pdlt.theory.deep_linear_log_metric(1.0, C_W=1.0, widths=(1000,) * 11)
    assert var[-1] == pytest.approx(2 * 10 / 1000, rel=2e-3)
    assert mean[-1] == pytest.approx(-10 / 1000, rel=5e-3)


def test_relu_angle_law():
    K1 = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    psi = pdlt.theory.kernel_angle(pdlt.kernel_recursion(K1, C_b=0.0, C_W=2.0, L=3000,
                                                         activation="relu"))
    assert float(psi[-1]) * 3000 / (3 * math.pi) == pytest.approx(1.0, abs=0.01)


def test_readout_kurtosis_reduces_to_the_book_for_gaussian_weights():
    for name, cb, cw in [("tanh", 0.0, 1.0), ("relu", 0.1, 2.0)]:
        f = pdlt.vertex_recursion(1.3, C_b=cb, C_W=cw, L=2, activation=name)
        book = 3 * float(f.V[1]) / (8 * float(f.K[1]) ** 2)
        got = pdlt.theory.readout_excess_kurtosis(1.3, C_b=cb, C_W=cw, activation=name, n=8, readout="gaussian")
        assert got == pytest.approx(book, rel=1e-10)
    assert pdlt.theory.readout_excess_kurtosis(2.0, C_b=0.0, C_W=2.0, n=4, readout="rademacher") == pytest.approx(0.75)
    with pytest.raises(pdlt.PDLTValueError, match="readout"):
        pdlt.theory.readout_excess_kurtosis(1.0, C_b=0.0, C_W=1.0, n=4, readout="cauchy")


# ----------------------------------------------------------------- ensembles
def _z(a, sa, b, sb):
    return float(abs(a - b) / math.sqrt(sa**2 + sb**2))


def test_samplers_agree_within_errors():
    """Explicit weights and the conditional sampler give the same E[Ĝ] and Var(Ĝ) (tanh, two inputs);
    a conditional ensemble at the wrong C_W is rejected by the same rule."""
    x = jnp.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.8]])
    kw = dict(widths=(6, 6, 6), C_b=0.1, activation="tanh", n_nets=6000, chunk=6000)
    e = pdlt.ensemble_moments(jax.random.key(1), x, C_W=1.0, method="explicit", **kw)
    c = pdlt.ensemble_moments(jax.random.key(2), x, C_W=1.0, method="conditional", **kw)
    wrong = pdlt.ensemble_moments(jax.random.key(3), x, C_W=1.3, method="conditional", **kw)
    for a, b in [(0, 0), (0, 1), (1, 1)]:
        assert _z(e.mean[2, a, b], e.mean_se[2, a, b], c.mean[2, a, b], c.mean_se[2, a, b]) < Z
        assert _z(e.var[2, a, b], e.var_se[2, a, b], c.var[2, a, b], c.var_se[2, a, b]) < Z
    assert _z(e.mean[2, 0, 0], e.mean_se[2, 0, 0], wrong.mean[2, 0, 0], wrong.mean_se[2, 0, 0]) > Z


def test_relu_exact_vertex_and_controls_in_the_ledger():
    """n Var(Ĝ) matches the exact ReLU law; slope 4 and an off-critical ensemble are rejected."""
    n, L, x = 32, 8, jnp.ones((1, 4))
    kw = dict(widths=(n,) * L, C_b=0.0, activation="relu", n_nets=20000, chunk=10000)
    m = pdlt.ensemble_moments(jax.random.key(0), x, C_W=2.0, **kw)
    off = pdlt.ensemble_moments(jax.random.key(1), x, C_W=2.3, **kw)
    v, se = n * m.var[-1, 0, 0] / 4, n * m.var_se[-1, 0, 0] / 4
    led = pdlt.Ledger("test")
    ok = led.check("exact", equation="", quantity="", theory=n * ((1 + 5 / n) ** (L - 1) - 1), measured=v, se=se,
                   null=0.0)
    bad = led.check("slope4", equation="", quantity="", theory=n * ((1 + 4 / n) ** (L - 1) - 1), measured=v, se=se,
                    expect="fail", null=n * ((1 + 4 / n) ** (L - 1) - 1))
    offc = led.check("off", equation="", quantity="", theory=2.0, measured=off.mean[-1, 0, 0],
                     se=off.mean_se[-1, 0, 0], expect="fail", null=2.0)
    assert ok.passed and not bad.passed and not offc.passed and led.all_ok


def test_streaming_is_chunk_invariant():
    kw = dict(widths=(8, 8, 8), C_b=0.0, C_W=1.0, activation="tanh", n_nets=3000)
    x = jnp.ones((1, 3))
    a = pdlt.ensemble_moments(jax.random.key(5), x, chunk=3000, **kw)
    b = pdlt.ensemble_moments(jax.random.key(5), x, chunk=1000, **kw)
    np.testing.assert_allclose(a.var, b.var, rtol=1e-9)
    np.testing.assert_allclose(a.raw, b.raw, rtol=1e-10)
    G, _ = pdlt.ensemble_metrics(jax.random.key(5), x, chunk=1300, **kw)  # short last chunk is padded
    np.testing.assert_allclose(np.mean(np.asarray(G), axis=0), a.mean, rtol=1e-10)


def test_overflow_warns_and_points_to_float64():
    with pytest.warns(RuntimeWarning, match="float64"):
        pdlt.ensembles.warn_nonfinite("test", jnp.array([1.0, jnp.inf], dtype=jnp.float32))
    with pytest.warns(RuntimeWarning, match="non-finite"):
        pdlt.ensemble_moments(jax.random.key(0), jnp.ones((1, 2)), widths=(4,) * 12, C_b=0.0, C_W=1e60,
                              activation="relu", n_nets=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not pdlt.ensembles.warn_nonfinite("test", jnp.ones(3))


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,word", [
    (lambda: pdlt.critical_point("nope"), "activation"),
    (lambda: pdlt.vertex_recursion(1.0, C_b=0.0, C_W=1.0, L=0), "L"),
    (lambda: pdlt.vertex_recursion(1.0, C_b=-1.0, C_W=1.0, L=3), "C_b"),
    (lambda: pdlt.theory.exact_metric_moments(1.0, C_W=1.0, widths=(4, 4), activation="tanh"), "activation"),
    (lambda: pdlt.theory.exact_metric_moments(1.0, C_W=1.0, widths=(4, 0)), "widths"),
    (lambda: pdlt.ensemble_moments(jax.random.key(0), jnp.ones((1, 2)), widths=(4,), C_b=-0.1, C_W=1.0,
                                   n_nets=10), "C_b"),
    (lambda: pdlt.ensemble_moments(jax.random.key(0), jnp.ones((1, 2)), widths=(4,), C_b=0.0, C_W=1.0,
                                   n_nets=1), "n_nets"),
    (lambda: pdlt.gauss.gaussian_expectation_dK(lambda z: z, -1.0), "K"),
    (lambda: pdlt.theory.chi_perp("tanh", 1.0, C_W=0.0), "C_W"),
])
def test_bad_input_names_the_parameter(call, word):
    with pytest.raises(pdlt.PDLTValueError, match=word):
        call()
