"""Appendix A: entropy and mutual information of scale mixtures, the MI series and r*."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import Z

import pdlt


# ----------------------------------------------------------------- closed forms
def test_series_coefficients_and_optimum():
    c2, c3 = pdlt.topics.mi_series_coefficients(2, 3)
    assert c2 == 6 / 8 and c3 == -6 * (15 + 20) / 48
    for nA, nB in [(1, 1), (2, 3), (4, 1)]:
        nL = nA + nB
        ts = np.linspace(0, 2 * pdlt.topics.optimal_t(nL), 200001)
        t_max = ts[np.argmax(np.asarray(pdlt.topics.mi_series(ts, nA, nB)))]
        assert t_max == pytest.approx(4 / (20 + 3 * nL), abs=1e-5)
    assert pdlt.topics.optimal_aspect_ratio(5.0, 2) == pytest.approx(4 / 26 / 5, rel=1e-14)
    assert pdlt.topics.optimal_aspect_ratio(2 / 3, 2) == pytest.approx(6 / 26, rel=1e-14)


def test_gaussian_entropy():
    assert float(pdlt.topics.gaussian_entropy(2.0, 3)) == pytest.approx(1.5 * np.log(2 * np.pi * np.e * 2.0), rel=1e-14)


# ----------------------------------------------------------------- exact quadrature
def test_point_law_has_no_information():
    ls, lw = np.zeros(1), np.zeros(1)
    assert abs(float(pdlt.topics.scale_mixture_mi(ls, lw, 2, 3))) < 1e-15
    assert abs(float(pdlt.topics.scale_mixture_kl(ls, lw, 4))) < 1e-15


def test_quadrature_step_converged():
    law = pdlt.topics.two_point_scale_law(0.3)
    a = float(pdlt.topics.scale_mixture_mi(*law, n_A=2, n_B=1, h=0.1))
    b = float(pdlt.topics.scale_mixture_mi(*law, n_A=2, n_B=1, h=0.05))
    assert a == pytest.approx(b, rel=1e-12)


@pytest.mark.parametrize("law", [pdlt.topics.lognormal_scale_law, pdlt.topics.two_point_scale_law])
@pytest.mark.parametrize("nA,nB", [(1, 1), (2, 3)])
def test_series_against_exact_quadrature(law, nA, nB):
    # the truncation error is O(t^4): it shrinks 16-fold when t halves
    errs = []
    for t in (4e-3, 2e-3):
        exact = float(pdlt.topics.scale_mixture_mi(*law(t), n_A=nA, n_B=nB))
        errs.append(abs(exact - float(pdlt.topics.mi_series(t, nA, nB))))
    assert errs[0] / errs[1] == pytest.approx(16, rel=0.15)  # order 3 would give 8, order 5 32
    c2, c3 = pdlt.topics.mi_coefficients_by_extrapolation(law, [5e-4, 1e-3, 2e-3, 3e-3], nA, nB)
    e2, e3 = pdlt.topics.mi_series_coefficients(nA, nB)
    assert c2 == pytest.approx(e2, rel=1e-5) and c3 == pytest.approx(e3, rel=2e-2)
    # negative control: the coefficient without the 3 n_L term is rejected by the same tolerance
    assert c3 != pytest.approx(-nA * nB * 20 / 48, rel=2e-2)


def test_kl_series_against_quadrature():
    for m in (1, 2, 5):
        exact = float(pdlt.topics.scale_mixture_kl(*pdlt.topics.lognormal_scale_law(0.005), m=m))
        assert exact == pytest.approx(float(pdlt.topics.mixture_kl_series(0.005, m)), rel=2e-3)
        assert exact != pytest.approx(float(pdlt.topics.mixture_kl_series(0.005, m, order=2)),
                                      rel=2e-3)


def test_quadrature_against_monte_carlo():
    """Independent estimate: sample the two-point mixture and average the exact log-density ratio."""
    rng = np.random.default_rng(11)
    t, S = 0.5, 400000
    ls, lw = pdlt.topics.two_point_scale_law(t)
    s = np.exp(np.asarray(ls))
    pick = rng.integers(0, 2, S)
    xa, xb = rng.standard_normal(S) * np.sqrt(s[pick]), rng.standard_normal(S) * np.sqrt(s[pick])

    def logp(u, m):  # log density of the m-dim mixture at |x|^2 = u
        comp = -0.5 * m * np.log(2 * np.pi * s[None]) - u[:, None] / (2 * s[None])
        return np.log(np.mean(np.exp(comp), axis=1))

    f = logp(xa**2 + xb**2, 2) - logp(xa**2, 1) - logp(xb**2, 1)
    m, se = f.mean(), f.std(ddof=1) / np.sqrt(S)
    exact = float(pdlt.topics.scale_mixture_mi(ls, lw, 1, 1))
    assert abs(m - exact) <= Z * se
    assert abs(m - float(pdlt.topics.mi_series(t))) > Z * se  # the truncated series is far off at t = 0.5


# ----------------------------------------------------------------- ReLU law and ensembles
@pytest.mark.parametrize("n,L", [(64, 2), (64, 5), (256, 12)])
def test_relu_law_moments(n, L):
    ls, lw = pdlt.topics.relu_scale_law(n, L)
    w, s = np.exp(np.asarray(lw)), np.exp(np.asarray(ls))
    assert w.sum() == pytest.approx(1.0, rel=1e-12)
    assert (w * s).sum() == pytest.approx(1.0, rel=1e-9)
    assert (w * s * s).sum() - 1 == pytest.approx(pdlt.topics.relu_output_t(n, L), rel=1e-7)


def test_ensemble_mi_against_exact_relu_law():
    rng = np.random.default_rng(5)
    n, L, S = 64, 4, 20000
    G = np.ones(S)
    for _ in range(L - 1):  # the exact per-layer factor (2/n) chi^2_B, B ~ Bin(n, 1/2)
        G *= 2 / n * rng.chisquare(np.maximum(rng.binomial(n, 0.5, S), 1))
    I, se = pdlt.topics.ensemble_mi(G, 1, 1)
    I2, se2 = pdlt.topics.ensemble_mi(G, 1, 1)
    assert float(I) == float(I2) and float(se) == float(se2)  # same input, same numbers
    exact = float(pdlt.topics.scale_mixture_mi(*pdlt.topics.relu_scale_law(n, L), n_A=1, n_B=1))
    assert abs(float(I) - exact) <= Z * float(se)
    # controls: infinite width (no information) and the leading t^2 term are rejected
    assert abs(float(I)) > Z * float(se)
    assert abs(float(I) - float(pdlt.topics.mi_series(pdlt.topics.relu_output_t(n, L),
                                                      order=2))) > Z * float(se)


# ----------------------------------------------------------------- validation
def test_bad_input_raises():
    with pytest.raises(pdlt.PDLTValueError, match="order"):
        pdlt.topics.mi_series(0.1, order=4)
    with pytest.raises(pdlt.PDLTValueError, match="t"):
        pdlt.topics.mi_series(-0.1)
    with pytest.raises(pdlt.PDLTValueError, match="Ghat"):
        pdlt.topics.ensemble_mi(np.array([1.0, 0.0, 2.0]), n_groups=2)
    with pytest.raises(pdlt.PDLTValueError, match="n_groups"):
        pdlt.topics.ensemble_mi(np.ones(5), n_groups=6)
    with pytest.raises(pdlt.PDLTValueError, match="nu"):
        pdlt.topics.optimal_aspect_ratio(0.0, 2)
    with pytest.raises(pdlt.PDLTValueError, match="n_A"):
        pdlt.topics.scale_mixture_mi(np.zeros(2), None, n_A=0)
