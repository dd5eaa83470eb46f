r"""Fixed points, susceptibilities and criticality of the kernel recursion (PDLT §5.1-§5.3).

For a single input the infinite-width kernel obeys :math:`K' = C_b + C_W\,g(K)` with
:math:`g(K) = \langle\sigma^2\rangle_K`. Perturbing around a fixed point :math:`K^\star` defines

.. math::
   \chi_\parallel(K) = C_W\,\frac{d\langle\sigma^2\rangle_K}{dK}
                     = \frac{C_W}{2K^2}\big\langle\sigma^2\,(z^2-K)\big\rangle_K,\qquad
   \chi_\perp(K) = C_W\,\langle\sigma'^2\rangle_K,\qquad
   h(K) = \tfrac12\,\frac{d\chi_\perp}{dK}

(PDLT eqs. (5.9)-(5.11) and §5.1; numbering unverified). Criticality is
:math:`\chi_\parallel(K^\star) = \chi_\perp(K^\star) = 1`. Since
:math:`d\langle\sigma^2\rangle/dK = \langle\sigma'^2\rangle + \langle\sigma\sigma''\rangle`, the two
conditions together mean :math:`\langle\sigma\sigma''\rangle_{K^\star} = 0`; then
:math:`C_W = 1/\langle\sigma'^2\rangle_{K^\star}` and :math:`C_b = K^\star - C_W\langle\sigma^2\rangle_{K^\star}`.

:func:`critical_point` solves this for any registered activation and classifies it:
scale-invariant (every K is marginal, :math:`C_W = 1/A_2`), the :math:`K^\star = 0` class
(:math:`\sigma(0) = 0`, :math:`a_1 < 0`), the half-stable class (a root :math:`K^\star > 0`: GELU,
SWISH), or no criticality (sigmoid, softplus, step), which raises.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._activations import Activation, get_activation
from ._gaussian import gaussian_expectation

__all__ = [
    "Criticality",
    "KStarZeroCoefficients",
    "sigma_sq",
    "chi_parallel",
    "chi_perp",
    "h_coefficient",
    "fixed_point",
    "critical_point",
    "kstar_zero_coefficients",
    "taylor_coefficients",
    "dense_expectation",
]


class Criticality(NamedTuple):
    """The critical initialization of an activation.

    Attributes:
      activation: registry name.
      C_b, C_W: the critical bias and weight variances.
      K_star: the fixed-point kernel (``nan`` for the scale-invariant class, where every K is a
        marginal fixed point).
      family: 'scale-invariant', 'K*=0' or 'half-stable'.
    """

    activation: str
    C_b: float
    C_W: float
    K_star: float
    family: str


class KStarZeroCoefficients(NamedTuple):
    r"""Taylor data of the :math:`K^\star = 0` class (PDLT §5.3.3, numbering unverified).

    :math:`\sigma(z) = \sigma_1 z + \sigma_2 z^2/2 + \sigma_3 z^3/6 + \dots`,
    :math:`a_1 = \sigma_3/\sigma_1 + \tfrac34(\sigma_2/\sigma_1)^2`,
    :math:`b_1 = \sigma_3/\sigma_1 + (\sigma_2/\sigma_1)^2`; at :math:`C_W = 1/\sigma_1^2`,
    :math:`\chi_\parallel = 1 + 2a_1K + O(K^2)`, :math:`\chi_\perp = 1 + b_1K + O(K^2)` and
    :math:`K^{(\ell)} \simeq 1/((-a_1)\ell)`.
    """

    sigma1: float
    sigma2: float
    sigma3: float
    a1: float
    b1: float


# ----------------------------------------------------------------------------- maps of K
# One-variable averages here use :func:`dense_expectation` (composite Gauss-Legendre), accurate at
# every K, including the large K* of SWISH where fixed-order Gauss-Hermite loses digits.

def sigma_sq(activation, K):
    r""":math:`g(K) = \langle\sigma^2\rangle_K` for a variance (or array of variances) ``K >= 0``."""
    act = get_activation(activation, "sigma_sq")
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    if act.scale_invariant:
        return act.slope_moment(2) * K
    if act.kernel is not None:
        return act.kernel(K, K, K)
    return dense_expectation(lambda z: act.sigma(z) ** 2, K)


def chi_parallel(activation, K, *, C_W: float):
    r"""Parallel susceptibility :math:`\chi_\parallel(K) = C_W\,d\langle\sigma^2\rangle_K/dK` (PDLT eq. (5.9)).

    Args:
      activation: registry name. K: variance(s) > 0 (any shape). C_W: weight variance > 0.
    Returns:
      array of K's shape.
    """
    act = get_activation(activation, "chi_parallel")
    _checks.positive("chi_parallel", C_W=C_W)
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    if act.scale_invariant:
        return C_W * act.slope_moment(2) * jnp.ones_like(K)
    if act.kernel is not None:
        return C_W * jnp.vectorize(jax.grad(lambda k: act.kernel(k, k, k)))(K)
    return C_W * _dense_dK(lambda z: act.sigma(z) ** 2, K)


def chi_perp(activation, K, *, C_W: float):
    r"""Perpendicular susceptibility :math:`\chi_\perp(K) = C_W\langle\sigma'^2\rangle_K` (PDLT eq. (5.10))."""
    act = get_activation(activation, "chi_perp")
    _checks.positive("chi_perp", C_W=C_W)
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    if act.scale_invariant:
        return C_W * act.slope_moment(2) * jnp.ones_like(K)
    if act.dkernel is not None:
        return C_W * act.dkernel(K, K, K)
    return C_W * dense_expectation(lambda z: act.dsigma(z) ** 2, K)


def h_coefficient(activation, K, *, C_W: float):
    r""":math:`h(K) = \tfrac12\,d\chi_\perp/dK = \tfrac{C_W}{2}\,d\langle\sigma'^2\rangle_K/dK` (PDLT §5.1,
    the coefficient of :math:`(\delta K_{[1]})^2` in the flow of :math:`\delta\delta K_{[2]}`; numbering unverified).
    Zero for the scale-invariant family (away from K = 0)."""
    act = get_activation(activation, "h_coefficient")
    _checks.positive("h_coefficient", C_W=C_W)
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    if act.scale_invariant:
        return jnp.zeros_like(K)
    if act.dkernel is not None:
        return 0.5 * C_W * jnp.vectorize(jax.grad(lambda k: act.dkernel(k, k, k)))(K)
    return 0.5 * C_W * _dense_dK(lambda z: act.dsigma(z) ** 2, K)


def fixed_point(activation, *, C_b: float, C_W: float, K0: float = 1.0, max_iter: int = 100000,
                tol: float = 1e-13):
    r"""The fixed point :math:`K^\star = C_b + C_W\langle\sigma^2\rangle_{K^\star}` reached by iterating the
    kernel recursion from ``K0`` (PDLT eq. (5.6), numbering unverified).

    Returns:
      float :math:`K^\star`.
    Raises:
      PDLTValueError: bad arguments, or the iteration does not converge (e.g. the kernel explodes).
    """
    fn = "fixed_point"
    act = get_activation(activation, fn)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive(fn, C_W=C_W, K0=K0)
    K = float(K0)
    for _ in range(max_iter):
        Kn = float(C_b + C_W * sigma_sq(act, K))
        if not np.isfinite(Kn) or Kn > 1e12:
            raise _checks.PDLTValueError(f"{fn}: the kernel of `activation` {act.name!r} explodes from K0={K0} "
                                         f"at C_b={C_b}, C_W={C_W}: no finite fixed point")
        if abs(Kn - K) <= tol * max(1.0, abs(K)):
            return Kn
        K = Kn
    raise _checks.PDLTValueError(f"{fn}: no convergence for `activation` {act.name!r} in {max_iter} steps "
                                 f"(C_b={C_b}, C_W={C_W}); the approach may be power-law slow")


# ----------------------------------------------------------------------------- accurate 1-D integrals

def dense_expectation(f, K):
    r""":math:`\langle f\rangle_K` by composite Gauss-Legendre on :math:`[-14\sqrt K, 14\sqrt K]` (1344 nodes):
    :func:`pdlt.gaussian_expectation` with ``rule="dense"``.

    An integrator independent of Gauss-Hermite, accurate to ~1e-14 for smooth ``f`` of moderate
    growth at any K (Gauss-Hermite with a fixed node count loses accuracy at large K for functions
    that are not polynomial-like). Used for root finding and cross-checks.
    """
    return gaussian_expectation(f, K, rule="dense")


def _dense_dK(f, K):
    r""":math:`d\langle f\rangle_K/dK = \langle f\,(z^2-K)\rangle_K/(2K^2)` (Stein's identity) by :func:`dense_expectation`."""
    return dense_expectation(lambda z: f(z) * (z * z - K[..., None]), K) / (2.0 * K * K)


def taylor_coefficients(activation) -> tuple[float, float, float, float]:
    r""":math:`(\sigma_0, \sigma_1, \sigma_2, \sigma_3)`: the activation and its first three derivatives at 0 (autodiff)."""
    act = get_activation(activation, "taylor_coefficients")
    d1 = jax.grad(act.sigma)
    d2 = jax.grad(d1)
    d3 = jax.grad(d2)
    z0 = jnp.asarray(0.0, jnp.result_type(float))
    return float(act.sigma(z0)), float(d1(z0)), float(d2(z0)), float(d3(z0))


def kstar_zero_coefficients(activation) -> KStarZeroCoefficients:
    r"""Taylor coefficients and :math:`a_1, b_1` of the :math:`K^\star = 0` class (see :class:`KStarZeroCoefficients`).

    Raises:
      PDLTValueError: sigma(0) != 0 or sigma'(0) == 0 (the activation is not in the class).
    """
    act = get_activation(activation, "kstar_zero_coefficients")
    s0, s1, s2, s3 = taylor_coefficients(act)
    if abs(s0) > 1e-14 or abs(s1) < 1e-14 or not act.smooth:
        raise _checks.PDLTValueError(
            f"kstar_zero_coefficients: `activation` {act.name!r} is not smooth with sigma(0) = 0 and sigma'(0) != 0 "
            f"(sigma(0) = {s0:.3g}, sigma'(0) = {s1:.3g})")
    r2, r3 = s2 / s1, s3 / s1
    return KStarZeroCoefficients(s1, s2, s3, r3 + 0.75 * r2**2, r3 + r2**2)


def _ssigma2(act: Activation):
    return lambda K: dense_expectation(lambda z: act.sigma(z) * act.d2sigma(z), K)


def critical_point(activation, *, K_max: float = 100.0) -> Criticality:
    r"""The critical initialization :math:`(C_b, C_W, K^\star)` of an activation (PDLT §5.2-§5.3).

    * scale-invariant: :math:`C_b = 0`, :math:`C_W = 1/A_2`, :math:`A_2 = (a_+^2 + a_-^2)/2`; every K is marginal
      (``K_star = nan``);
    * :math:`K^\star = 0` class (smooth, :math:`\sigma(0)=0`, :math:`a_1 < 0`): :math:`C_b = 0`, :math:`C_W = 1/\sigma_1^2`;
    * otherwise the smallest root :math:`K^\star\in(0, K_{\max}]` of :math:`\langle\sigma\sigma''\rangle_K = 0`
      (bisection on a log grid, then Brent to 1e-14), with :math:`C_W = 1/\langle\sigma'^2\rangle_{K^\star}` and
      :math:`C_b = K^\star - C_W\langle\sigma^2\rangle_{K^\star} \ge 0`.

    Returns:
      :class:`Criticality`.
    Raises:
      PDLTValueError: unknown activation, or none exists (sigmoid, softplus: no root and sigma(0) != 0;
        step: sigma' is a delta function), naming the activation.
    """
    from scipy.optimize import brentq

    fn = "critical_point"
    act = get_activation(activation, fn)
    _checks.positive(fn, K_max=K_max)
    if act.scale_invariant:
        A2 = act.slope_moment(2)
        return Criticality(act.name, 0.0, 1.0 / A2, float("nan"), "scale-invariant")
    if not act.smooth:
        raise _checks.PDLTValueError(
            f"{fn}: `activation` {act.name!r} has no critical initialization: its derivative is a delta function, "
            "so chi_perp is infinite")
    s0, s1, _, _ = taylor_coefficients(act)
    if abs(s0) < 1e-14 and abs(s1) > 1e-14:
        c = kstar_zero_coefficients(act)
        if c.a1 < 0:
            return Criticality(act.name, 0.0, 1.0 / c.sigma1**2, 0.0, "K*=0")
    f = _ssigma2(act)
    grid = np.geomspace(1e-3, K_max, 400)
    vals = np.asarray(f(jnp.asarray(grid)))
    idx = np.nonzero(np.sign(vals[:-1]) * np.sign(vals[1:]) < 0)[0]
    if len(idx) == 0:
        raise _checks.PDLTValueError(
            f"{fn}: `activation` {act.name!r} has no critical initialization: <sigma sigma''>_K has no root for "
            f"0 < K <= {K_max:g}, and sigma(0) = {s0:.3g} != 0 rules out the K*=0 class (PDLT §5.3.2)")
    i = int(idx[0])
    Ks = brentq(lambda k: float(f(k)), grid[i], grid[i + 1], xtol=1e-14, rtol=1e-15, maxiter=200)
    C_W = 1.0 / float(dense_expectation(lambda z: act.dsigma(z) ** 2, Ks))
    C_b = Ks - C_W * float(dense_expectation(lambda z: act.sigma(z) ** 2, Ks))
    if C_b < 0:
        raise _checks.PDLTValueError(
            f"{fn}: `activation` {act.name!r} has no critical initialization: the root K*={Ks:.6g} needs C_b={C_b:.3g} < 0")
    return Criticality(act.name, float(C_b), float(C_W), float(Ks), "half-stable")
