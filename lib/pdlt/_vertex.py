r"""Finite-width corrections: the four-point vertex V and the 1/n metric correction G1 (PDLT §4.3-§5.4).

At width n the preactivation distribution of layer ell is nearly Gaussian. Its conditional metric
:math:`\hat G^{(\ell)}` (the covariance of layer ell given layer ell-1) fluctuates with

.. math:: E[\hat G^{(\ell)}] = G^{(\ell)} = K^{(\ell)} + \frac{G^{\{1\}(\ell)}}{n_{\ell-1}} + O(1/n^2),\qquad
          \mathrm{Cov}\big(\hat G^{(\ell)}_{a_1a_2},\hat G^{(\ell)}_{a_3a_4}\big) = \frac{V^{(\ell)}_{(a_1a_2)(a_3a_4)}}{n_{\ell-1}} + O(1/n^2),

and the connected four-point function of the preactivations is built from V (PDLT eqs. (4.36)-(4.43)).
Single-input recursions (PDLT eqs. (4.90), (4.115)-(4.118) and §5.4; numbering unverified):

.. math::
   V' = C_W^2\big(\langle\sigma^4\rangle_K - \langle\sigma^2\rangle_K^2\big) + \frac{n_\ell}{n_{\ell-1}}\chi_\parallel^2 V,\qquad
   G^{\{1\}\prime} = \frac{n_\ell}{n_{\ell-1}}\Big(\chi_\parallel G^{\{1\}} + \frac{C_W}{2}\,\frac{d^2\langle\sigma^2\rangle_K}{dK^2}\,V\Big),

with :math:`V^{(1)} = G^{\{1\}(1)} = 0` (the first layer is exactly Gaussian). The multi-input form
(:func:`vertex_recursion_multi`) replaces :math:`\chi_\parallel` by the Jacobian of the kernel map
:math:`F(K) = C_b + C_W\langle\sigma\sigma\rangle_K` and the second derivative by its Hessian.

Exact results at any width (:func:`exact_metric_moments`): for a scale-invariant activation with
:math:`C_b = 0`, :math:`\hat G^{(\ell+1)} = \hat G^{(\ell)} X_\ell` with iid
:math:`X_\ell = \frac{C_W}{n_\ell}\sum_j \sigma(g_j)^2`, :math:`g_j\sim\mathcal N(0,1)`, so
:math:`E[(\hat G^{(\ell)})^m] = (G^{(1)})^m\prod_{\ell'<\ell}E[X_{\ell'}^m]`; deep linear:
:math:`E[X^2] = C_W^2(1+2/n)`; ReLU at criticality: :math:`E[X^2] = 1 + 5/n`, hence
:math:`V^{(\ell)}/K^2 = n[(1+5/n)^{\ell-1}-1]`.
"""
from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._activations import get_activation
from ._criticality import chi_parallel, dense_expectation, sigma_sq
from ._gaussian import gaussian_moment_tensor, kernel_map, scale_invariant_expectation2

__all__ = [
    "VertexFlow",
    "vertex_recursion",
    "vertex_recursion_multi",
    "exact_metric_moments",
    "exact_vertex",
    "scale_invariant_nu",
    "kernel_angle",
    "deep_linear_log_metric",
    "READOUT_KURTOSIS",
    "readout_excess_kurtosis",
]


class VertexFlow(NamedTuple):
    """Layer-by-layer infinite-width kernel and its leading finite-width corrections.

    Attributes (entry ``ell-1`` is layer ``ell``):
      K: kernel, shape ``(L,)`` (single input) or ``(L, N, N)``.
      V: four-point vertex, ``(L,)`` or ``(L, N, N, N, N)``; ``Cov(Ghat_ab, Ghat_cd) = V_abcd / n_{ell-1}``.
      G1: 1/n metric correction, ``(L,)`` or ``(L, N, N)``; ``E[Ghat] = K + G1 / n_{ell-1}``.
      chi_par: parallel susceptibility at each layer's kernel (single input; ``None`` for multi-input).
    """

    K: jax.Array
    V: jax.Array
    G1: jax.Array
    chi_par: jax.Array | None


def _ratios(fn, widths, L):
    """n_ell / n_{ell-1} for the step ell -> ell+1, ell = 1..L-1 (the first is irrelevant: V1 = 0)."""
    if widths is None:
        return np.ones(max(L - 1, 1))
    w = _checks.widths(fn, "widths", widths)
    if len(w) < L - 1:
        raise _checks.PDLTValueError(f"{fn}: `widths` needs at least L-1 = {L - 1} entries (n_1..n_(L-1)), got {len(w)}")
    r = [1.0] + [w[ell] / w[ell - 1] for ell in range(1, L - 1)]
    return np.asarray(r[: max(L - 1, 1)], float)


def _single_step_terms(act, K, C_W):
    """(g, Var sigma^2, chi_par, g'') at variance K (g and chi_par from :mod:`pdlt._criticality`)."""
    g, chi = sigma_sq(act, K), chi_parallel(act, K, C_W=C_W)
    if act.scale_invariant:
        A2 = act.slope_moment(2)
        A4 = act.slope_moment(4)
        return g, (3 * A4 - A2**2) * K**2, chi, 0.0 * K
    s2 = lambda z: act.sigma(z) ** 2  # noqa: E731
    g4 = dense_expectation(lambda z: act.sigma(z) ** 4, K)
    g2 = dense_expectation(lambda z: s2(z) * (z**4 - 6 * K * z * z + 3 * K * K), K) / (4 * K**4)
    return g, g4 - g * g, chi, g2


@_checks.warns_nonfinite("recursion")
def vertex_recursion(K1, *, C_b: float, C_W: float, L: int, activation="relu", widths=None) -> VertexFlow:
    r"""Single-input K, V, G1 and :math:`\chi_\parallel` for layers 1..L (see the module docstring).

    Args:
      K1: first-layer kernel :math:`K^{(1)} = C_b + C_W|x|^2/n_0 > 0` (scalar).
      C_b, C_W: bias and weight variances of layers 2..L (scalars).
      L: depth >= 1.
      activation: registry name.
      widths: hidden widths ``(n_1, ..., n_{L-1}, ...)`` or None for equal widths (only ratios enter;
        divide V and G1 by :math:`n_{\ell-1}` yourself).
    Returns:
      :class:`VertexFlow` with arrays of shape ``(L,)``.
    Raises:
      PDLTValueError: bad activation, K1 <= 0, negative C_b, C_W <= 0, L < 1, too few widths.
    """
    fn = "vertex_recursion"
    act = get_activation(activation, fn)
    _checks.positive_int(fn, L=L)
    _checks.positive(fn, K1=K1, C_W=C_W)
    _checks.nonnegative(fn, C_b=C_b)
    r = jnp.asarray(_ratios(fn, widths, L), jnp.result_type(float))
    return _vertex_scan(jnp.asarray(K1, jnp.result_type(float)), float(C_b), float(C_W), L, act.name, r)


@partial(jax.jit, static_argnames=("L", "name"))  # C_b, C_W traced: one compile per (L, activation)
def _vertex_scan(K1, C_b, C_W, L, name, r):
    act = get_activation(name)

    def step(carry, ratio):
        K, V, G1 = carry
        g, varsig, chi, g2 = _single_step_terms(act, K, C_W)
        Kn = C_b + C_W * g
        Vn = C_W**2 * varsig + ratio * chi**2 * V
        Gn = ratio * (chi * G1 + 0.5 * C_W * g2 * V)
        return (Kn, Vn, Gn), (Kn, Vn, Gn, chi)

    zero = jnp.zeros_like(K1)
    chi1 = _single_step_terms(act, K1, C_W)[2]
    if L == 1:
        return VertexFlow(K1[None], zero[None], zero[None], jnp.asarray(chi1)[None])
    _, (Ks, Vs, Gs, chis) = jax.lax.scan(step, (K1, zero, zero), r[: L - 1])
    cat = lambda a, b: jnp.concatenate([jnp.asarray(a)[None], b])  # noqa: E731
    chi_last = _single_step_terms(act, Ks[-1], C_W)[2]
    return VertexFlow(cat(K1, Ks), cat(zero, Vs), cat(zero, Gs), jnp.concatenate([chis, jnp.asarray(chi_last)[None]]))


# ----------------------------------------------------------------------------- several inputs

def _moment_tensors(act, K):
    """S2_ab = <s_a s_b>, S4_abcd = <s_a s_b s_c s_d> at kernel K (N, N)."""
    N = K.shape[-1]

    if act.scale_invariant and N <= 2:
        if N == 1:
            A2 = act.slope_moment(2)
            A4 = act.slope_moment(4)
            return (A2 * K).reshape(1, 1), (3 * A4 * K[0, 0] ** 2).reshape(1, 1, 1, 1)

        def f2(z):
            s = act.sigma(z)
            return s[:, :, None] * s[:, None, :]

        def f4(z):
            s = act.sigma(z)
            return jnp.einsum("pa,pb,pc,pd->pabcd", s, s, s, s)

        return scale_invariant_expectation2(f2, K, 2), scale_invariant_expectation2(f4, K, 4)
    return gaussian_moment_tensor(act.sigma, K, 2), gaussian_moment_tensor(act.sigma, K, 4)


@_checks.warns_nonfinite("recursion")
def vertex_recursion_multi(K1, *, C_b: float, C_W: float, L: int, activation="relu", widths=None) -> VertexFlow:
    r"""K, V and G1 for N inputs at once (PDLT eqs. (4.90) and (4.118) in matrix form; numbering unverified).

    .. math::
       V'_{(a_1a_2)(a_3a_4)} = C_W^2\big[\langle\sigma_{a_1}\sigma_{a_2}\sigma_{a_3}\sigma_{a_4}\rangle_K
          - \langle\sigma_{a_1}\sigma_{a_2}\rangle_K\langle\sigma_{a_3}\sigma_{a_4}\rangle_K\big]
          + \frac{n_\ell}{n_{\ell-1}}\sum J_{(a_1a_2)(b_1b_2)}J_{(a_3a_4)(b_3b_4)}V_{(b_1b_2)(b_3b_4)},

    .. math::
       G^{\{1\}\prime}_{a_1a_2} = \frac{n_\ell}{n_{\ell-1}}\Big[\sum J_{(a_1a_2)(b_1b_2)}G^{\{1\}}_{b_1b_2}
          + \tfrac12\sum H_{(a_1a_2)(b_1b_2)(b_3b_4)}V_{(b_1b_2)(b_3b_4)}\Big],

    with J and H the first and second derivatives of :math:`F(K) = C_b + C_W\langle\sigma\sigma\rangle_K`
    (automatic differentiation of the closed-form or quadrature kernel map; the book writes the
    same contraction with inverse kernels and :math:`\langle\sigma\sigma(zz-K)\rangle`). The four-point
    averages are exact (polar quadrature) for scale-invariant activations with N <= 2 and by
    tensor Gauss-Hermite otherwise.

    Args:
      K1: ``(N, N)`` first-layer kernel (N <= 3). Others as :func:`vertex_recursion`.
    Returns:
      :class:`VertexFlow` with K ``(L, N, N)``, V ``(L, N, N, N, N)``, G1 ``(L, N, N)``.
    """
    fn = "vertex_recursion_multi"
    act = get_activation(activation, fn)
    _checks.positive_int(fn, L=L)
    _checks.positive(fn, C_W=C_W)
    _checks.nonnegative(fn, C_b=C_b)
    K1 = jnp.asarray(K1, jnp.result_type(float))
    if K1.ndim != 2 or K1.shape[0] != K1.shape[1] or K1.shape[0] > 3:
        raise _checks.PDLTValueError(f"{fn}: `K1` must be an (N, N) matrix with N <= 3, got shape {K1.shape}")
    _checks.kernel(fn, "K1", K1)
    r = _ratios(fn, widths, L)
    step = _multi_step(act.name, float(C_b), float(C_W))
    N = K1.shape[0]
    K, V, G1 = K1, jnp.zeros((N,) * 4, K1.dtype), jnp.zeros_like(K1)
    Ks, Vs, Gs = [K], [V], [G1]
    for ell in range(L - 1):
        K, V, G1 = step(K, V, G1, r[ell])
        Ks.append(K), Vs.append(V), Gs.append(G1)
    return VertexFlow(jnp.stack(Ks), jnp.stack(Vs), jnp.stack(Gs), None)


@lru_cache(maxsize=64)   # one compiled step per (activation, C_b, C_W), not one per call
def _multi_step(name, C_b, C_W):
    act = get_activation(name)

    def F(K):
        return C_b + C_W * kernel_map(act, 0.5 * (K + K.T))

    @jax.jit
    def step(K, V, G1, ratio):
        N = K.shape[0]
        S2, S4 = _moment_tensors(act, K)
        J = jax.jacfwd(F)(K).reshape(N * N, N * N)
        H = jax.jacfwd(jax.jacfwd(F))(K).reshape(N * N, N * N, N * N)
        Vf = V.reshape(N * N, N * N)
        Vn = C_W * C_W * (S4.reshape(N * N, N * N) - jnp.outer(S2.ravel(), S2.ravel())) + ratio * J @ Vf @ J.T
        Gn = ratio * (J @ G1.ravel() + 0.5 * jnp.einsum("pqr,qr->p", H, Vf))
        return F(K), Vn.reshape((N,) * 4), Gn.reshape(N, N)

    return step


def kernel_angle(K):
    r"""The angle :math:`\psi` between two inputs, :math:`\cos\psi = K_{12}/\sqrt{K_{11}K_{22}}` (PDLT §5.5).

    Args:
      K: ``(..., 2, 2)``. Returns: ``(...)`` angles in [0, pi].
    """
    K = jnp.asarray(K)
    c = K[..., 0, 1] / jnp.sqrt(K[..., 0, 0] * K[..., 1, 1])
    return jnp.arccos(jnp.clip(c, -1.0, 1.0))


# ----------------------------------------------------------------------------- exact results

def _sum_moments(mu, n, order):
    """Raw moments 1..order of a sum of n iid variables with raw moments mu[1..order] (via cumulants)."""
    m = [1.0] + list(mu[1: order + 1])
    kappa = [0.0] * (order + 1)
    for k in range(1, order + 1):  # moments -> cumulants
        kappa[k] = m[k] - sum(math.comb(k - 1, j - 1) * kappa[j] * m[k - j] for j in range(1, k))
    kappa = [n * c for c in kappa]
    M = [1.0] + [0.0] * order
    for k in range(1, order + 1):  # cumulants -> moments
        M[k] = sum(math.comb(k - 1, j - 1) * kappa[j] * M[k - j] for j in range(1, k + 1))
    return M


def scale_invariant_nu(activation) -> float:
    r""":math:`\nu = 3A_4/A_2^2 - 1` of a scale-invariant activation, :math:`A_k = (a_+^k + a_-^k)/2`
    (the slope of :math:`V/(nK^2)` in :math:`\ell/n` at criticality; ReLU 5, linear 2; PDLT §5.4.1)."""
    act = get_activation(activation, "scale_invariant_nu")
    if not act.scale_invariant:
        raise _checks.PDLTValueError(f"scale_invariant_nu: `activation` {act.name!r} is not scale-invariant")
    A2 = act.slope_moment(2)
    A4 = act.slope_moment(4)
    return 3 * A4 / A2**2 - 1


@_checks.warns_nonfinite("recursion")
def exact_metric_moments(K1, *, C_W: float, widths, activation="relu", order: int = 4):
    r"""Exact :math:`E[(\hat G^{(\ell)})^m]`, m = 1..order, at any widths, for a scale-invariant activation
    with :math:`C_b = 0` (single input; deep linear: PDLT eqs. (3.21)-(3.25); ReLU: §5.4.1).

    :math:`\hat G^{(\ell+1)} = \hat G^{(\ell)}X_\ell`, :math:`X_\ell = \frac{C_W}{n_\ell}\sum_{j=1}^{n_\ell}s_j`,
    :math:`s_j = \sigma(g_j)^2`, whose raw moments are :math:`E[s^k] = (2k-1)!!\,(a_+^{2k}+a_-^{2k})/2`.
    The output moments follow as :math:`E[z^{2m}] = (2m-1)!!\,E[\hat G^m]`.

    Args:
      K1: :math:`G^{(1)} = C_W|x|^2/n_0 > 0`.
      C_W: weight variance of layers 2..L.
      widths: ``(n_1, ..., n_L)`` (layer ell+1 uses n_ell; n_L is not used).
      activation: a scale-invariant registry name. order: highest moment.
    Returns:
      numpy array ``(L, order)``; entry ``[ell-1, m-1]`` is :math:`E[(\hat G^{(\ell)})^m]`.
    Raises:
      PDLTValueError: non-scale-invariant activation or bad arguments.
    """
    fn = "exact_metric_moments"
    act = get_activation(activation, fn)
    if not act.scale_invariant:
        raise _checks.PDLTValueError(f"{fn}: `activation` {act.name!r} is not scale-invariant; no exact result")
    w = _checks.widths(fn, "widths", widths)
    _checks.positive(fn, K1=K1, C_W=C_W)
    _checks.positive_int(fn, order=order)
    mu = [1.0] + [math.prod(range(2 * k - 1, 0, -2)) * act.slope_moment(2 * k)
                  for k in range(1, order + 1)]
    out = np.empty((len(w), order))
    cur = np.array([float(K1) ** m for m in range(1, order + 1)])
    out[0] = cur
    for ell in range(len(w) - 1):
        n = w[ell]
        S = _sum_moments(mu, n, order)
        EX = np.array([(C_W / n) ** m * S[m] for m in range(1, order + 1)])
        cur = cur * EX
        out[ell + 1] = cur
    return out


@_checks.warns_nonfinite("recursion")
def exact_vertex(K1, *, C_W: float, widths, activation="relu"):
    r"""Exact :math:`V^{(\ell)} = n_{\ell-1}\,\mathrm{Var}(\hat G^{(\ell)})` at any width (scale-invariant, C_b = 0);
    at criticality with equal widths, :math:`V^{(\ell)}/K^2 = n[(1+\nu/n)^{\ell-1}-1]`.

    Returns:
      numpy array ``(L,)`` (``V^(1) = 0``).
    """
    M = exact_metric_moments(K1, C_W=C_W, widths=widths, activation=activation, order=2)
    w = _checks.widths("exact_vertex", "widths", widths)
    nprev = np.array([1.0] + list(w[:-1]), float)
    return nprev * (M[:, 1] - M[:, 0] ** 2)


@_checks.warns_nonfinite("recursion")
def deep_linear_log_metric(K1, *, C_W: float, widths):
    r"""Exact mean and variance of :math:`\log\hat G^{(\ell)}` for a deep linear network (no biases; PDLT §3.4).

    :math:`\hat G^{(\ell+1)} = \hat G^{(\ell)}\,C_W\,\chi^2_{n_\ell}/n_\ell` with independent chi-squared factors, so
    :math:`E[\log\hat G^{(\ell)}] = \log G^{(1)} + \sum_{\ell'<\ell}[\log(2C_W/n_{\ell'}) + \psi(n_{\ell'}/2)]` and
    :math:`\mathrm{Var}[\log\hat G^{(\ell)}] = \sum_{\ell'<\ell}\psi_1(n_{\ell'}/2)\approx 2(\ell-1)/n`
    (digamma :math:`\psi`, trigamma :math:`\psi_1`): the log of the output norm spreads like a random walk,
    with variance set by the aspect ratio, while :math:`E[\hat G]` stays :math:`C_W^{\ell-1}G^{(1)}`.

    Args:
      K1: :math:`G^{(1)} > 0`. C_W: weight variance. widths: ``(n_1, ..., n_L)``.
    Returns:
      ``(mean, var)``, numpy arrays of shape ``(L,)``.
    """
    from scipy.special import polygamma, psi

    fn = "deep_linear_log_metric"
    w = _checks.widths(fn, "widths", widths)
    _checks.positive(fn, K1=K1, C_W=C_W)
    n = np.asarray(w[:-1], float)
    steps_m = np.log(2 * C_W / n) + psi(n / 2)
    steps_v = polygamma(1, n / 2)
    mean = np.log(float(K1)) + np.concatenate([[0.0], np.cumsum(steps_m)])
    var = np.concatenate([[0.0], np.cumsum(steps_v)])
    return mean, var


#: :math:`E[v^4]/E[v^2]^2` of the readout distributions of :func:`pdlt.readout_ensemble`.
READOUT_KURTOSIS = {"gaussian": 3.0, "rademacher": 1.0, "uniform": 9.0 / 5.0}


@_checks.warns_nonfinite("recursion")
def readout_excess_kurtosis(K1, *, C_b: float, C_W: float, activation="relu", n: int, readout="gaussian"):
    r"""Exact excess kurtosis of a one-hidden-layer output at any width n (Antognini 2019, arXiv:1908.10030;
    with a Gaussian readout it is the book's layer-2 result :math:`3V^{(2)}/(n_1 (K^{(2)})^2)`, PDLT §4.2).

    The output is a bias plus a sum of n iid terms :math:`v_i\sigma_i`, so its fourth cumulant is exactly
    :math:`\frac{C_W^2}{n}\big[\kappa_v\langle\sigma^4\rangle_{K^{(1)}} - 3\langle\sigma^2\rangle_{K^{(1)}}^2\big]`
    with :math:`\kappa_v = E[v^4]/E[v^2]^2` (3 Gaussian, 1 Rademacher, 9/5 uniform); divided by
    :math:`(K^{(2)})^2 = (C_b + C_W\langle\sigma^2\rangle)^2`.

    Returns:
      float.
    """
    fn = "readout_excess_kurtosis"
    act = get_activation(activation, fn)
    _checks.one_of(fn, "readout", readout, tuple(READOUT_KURTOSIS))
    _checks.positive(fn, K1=K1, C_W=C_W)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive_int(fn, n=n)
    K1 = jnp.asarray(K1, jnp.result_type(float))
    s2 = np.float64(dense_expectation(lambda z: act.sigma(z) ** 2, K1))
    s4 = np.float64(dense_expectation(lambda z: act.sigma(z) ** 4, K1))
    Cw = np.float64(C_W)     # NumPy arithmetic: an overflow gives inf (and the one warning), not OverflowError
    with np.errstate(over="ignore", invalid="ignore"):
        return float(Cw**2 * (READOUT_KURTOSIS[readout] * s4 - 3 * s2**2) / (n * (C_b + Cw * s2) ** 2))
