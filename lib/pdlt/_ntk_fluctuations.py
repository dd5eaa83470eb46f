r"""Finite-width NTK statistics for a single input: mean H and fluctuation tensors A, B, D, F
(PDLT §8.2-§8.3 and §9.1-§9.3, numbering unverified).

Conventions (equal hidden widths n, one input, output neuron indices i):

.. math::
   E[\hat H_{i_1i_2}] = \delta_{i_1i_2} H,\qquad
   E[\widehat{\Delta H}_{i_1i_2}\, z_{i_3} z_{i_4}] = \tfrac1n\big[\delta_{12}\delta_{34} D + \delta_{13}\delta_{24} F + \delta_{14}\delta_{23} F\big],\\
   E[\widehat{\Delta H}_{i_1i_2}\widehat{\Delta H}_{i_3i_4}] = \tfrac1n\big[\delta_{12}\delta_{34} A + \delta_{13}\delta_{24} B + \delta_{14}\delta_{23} B\big],

with :math:`\widehat{\Delta H} = \hat H - E[\hat H]` and :math:`V/n = \mathrm{Var}(\hat G)` the four-point
vertex. This tensor structure is exact at any width (the output index of an MLP is O(n) symmetric).

Given layer :math:`\ell`, the next layer's NTK is
:math:`\hat H'_{ik} = \delta_{ik}[\lambda_b + \tfrac{\lambda_W}{n}\sum_j\sigma_j^2] + \sum_{jm}W_{ij}W_{km}\sigma'_j\sigma'_m\hat H_{jm}`;
averaging over the fresh weights and expanding the remaining averages over layer :math:`\ell` to
leading order in 1/n gives (all Gaussian averages at :math:`K^{(\ell)}`, :math:`\lambda = \lambda^{(\ell+1)}`)

.. math::
   H' &= \lambda_b + \lambda_W\langle\sigma^2\rangle + \chi_\perp H,\qquad
   F' = C_W^2\langle\sigma^2\sigma'^2\rangle H + \chi_\parallel^2 F,\qquad
   B' = C_W^2\langle\sigma'^4\rangle H^2 + \chi_\perp^2 B,\\
   D' &= \tfrac{\lambda_W}{C_W}V' + C_W^2 H\,\mathrm{cov}(\sigma^2,\sigma'^2) + 2h\chi_\parallel HV + \chi_\parallel\chi_\perp D,\\
   A' &= \tfrac{\lambda_W^2}{C_W^2}V' + \tfrac{2\lambda_W}{C_W}\big[C_W^2 H\,\mathrm{cov}(\sigma^2,\sigma'^2) + 2h\chi_\parallel HV + \chi_\parallel\chi_\perp D\big]
      + C_W^2\mathrm{var}(\sigma'^2)H^2 + 4h^2H^2V + 4h\chi_\perp HD + \chi_\perp^2 A,

with :math:`V' = C_W^2\mathrm{var}(\sigma^2) + \chi_\parallel^2 V`,
:math:`\chi_\parallel = \tfrac{C_W}{2K^2}\langle\sigma^2(z^2-K)\rangle`, :math:`\chi_\perp = C_W\langle\sigma'^2\rangle`,
:math:`h = \tfrac12 d\chi_\perp/dK = \tfrac{C_W}{4K^2}\langle\sigma'^2(z^2-K)\rangle` (Stein's identity), and
:math:`A = B = D = F = V = 0` in the first layer.

For ReLU at criticality (:math:`C_b = 0, C_W = 2`) the sign-flip symmetry of each neuron makes the
recursion closable at finite width (:func:`relu_ntk_fluctuations_exact`), exactly when the bias learning
rates of the hidden layers 2..L-1 vanish (see there). Closed forms per universality
class and the learning-rate-equivalence scalings are in the second half of this module.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _checks
from ._activations import get_activation
from ._criticality import (chi_parallel, chi_perp, critical_point, dense_expectation, h_coefficient,
                           kstar_zero_coefficients, sigma_sq, taylor_coefficients)

__all__ = [
    "NTKStats",
    "single_input_moments",
    "ntk_fluctuations",
    "relu_ntk_fluctuations_exact",
    "scale_invariant_ntk_closed_form",
    "scale_invariant_ntk_slopes",
    "scale_invariant_mean_ntk",
    "kstar0_ntk_slopes",
    "taylor_coefficients",
    "perpendicular_exponent",
    "equivalent_learning_rates",
    "relative_ntk_variance",
    "kstar0_asymptotic_ntk",
    "ntk_critical_init",
]


class NTKStats(NamedTuple):
    """Per-layer single-input NTK statistics; every field has shape ``(L,)`` (entry ``ell-1`` = layer ``ell``).

    K: kernel (exact-in-n ReLU: the exact mean metric G); V: four-point vertex; H: NTK mean;
    A, B: NTK variance tensors; D, F: NTK-preactivation cross-correlation tensors.
    """

    K: jax.Array
    V: jax.Array
    H: jax.Array
    A: jax.Array
    B: jax.Array
    D: jax.Array
    F: jax.Array


def _first_layer(x, C_b, C_W, lb1, lw1):
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 1:
        raise _checks.PDLTValueError(f"single-input NTK statistics: `x` must be one input of shape (n0,), got {x.shape}")
    g0 = jnp.sum(x * x) / x.shape[0]
    return C_b + C_W * g0, lb1 + lw1 * g0


def _validate(fn, L, C_b, C_W, lambda_b, lambda_W):
    _checks.positive_int(fn, L=L)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive(fn, C_W=C_W)
    return _checks.per_layer_rates(fn, lambda_b, lambda_W, L)


def single_input_moments(activation, K, C_W):
    r"""The Gaussian averages at variance K that drive the single-input recursions.

    Returns a dict of arrays (K's shape): ``s2 = <σ²>``, ``s4 = <σ⁴>``, ``d2 = <σ'²>``, ``d4 = <σ'⁴>``,
    ``s2d2 = <σ²σ'²>``, ``chi_par``, ``chi_perp``, ``h = (1/2) dχ⊥/dK`` (PDLT §5.1 and §8-9). The
    susceptibilities, h and ``s2`` are those of :mod:`pdlt._criticality`; the other averages use the
    same integrator, :func:`pdlt.dense_expectation`.
    """
    act = get_activation(activation, "single_input_moments")
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    s, ds = act.sigma, act.dsigma
    d2 = chi_perp(act, K, C_W=1.0)
    return {
        "s2": sigma_sq(act, K),
        "s4": dense_expectation(lambda z: s(z) ** 4, K),
        "d2": d2,
        "d4": dense_expectation(lambda z: ds(z) ** 4, K),
        "s2d2": dense_expectation(lambda z: (s(z) * ds(z)) ** 2, K),
        "chi_par": chi_parallel(act, K, C_W=C_W),
        "chi_perp": C_W * d2,
        "h": h_coefficient(act, K, C_W=C_W),
    }


@_checks.warns_nonfinite("recursion")
def ntk_fluctuations(x, *, C_b, C_W, L: int, activation="relu", lambda_b=1.0, lambda_W=1.0) -> NTKStats:
    r"""Leading-order single-input recursions for K, V, H, A, B, D, F (module docstring; PDLT §8.3).

    The N = 1 case of :func:`pdlt.ntk_statistics` (one implementation; the scalar recursions of the
    module docstring are what it reduces to, checked to 1e-12 in ``tests/test_ntk_stats.py``).

    Args:
      x: one input, shape ``(n0,)``.
      C_b, C_W: initialization hyperparameters (scalars, the same at every layer).
      L: depth (>= 1).
      activation: registry name.
      lambda_b, lambda_W: learning rates, scalars or per-layer sequences of length L, >= 0.
    Returns:
      :class:`NTKStats` with fields of shape ``(L,)``; A, B, D, F, V are the coefficients of 1/n.
    Raises:
      PDLTValueError: bad depth, hyperparameter, activation or learning-rate tensor (before compute).
    """
    fn = "ntk_fluctuations"
    lb, lw = _validate(fn, L, C_b, C_W, lambda_b, lambda_W)
    act = get_activation(activation, fn)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 1:
        raise _checks.PDLTValueError(f"{fn}: `x` must be one input of shape (n0,), got {x.shape}")
    from ._ntk_stats import ntk_statistics

    s = ntk_statistics(x[None], C_b=C_b, C_W=C_W, L=L, activation=act.name, lambda_b=lb, lambda_W=lw)
    f = lambda a: a.reshape(L)  # noqa: E731
    return NTKStats(f(s.K), f(s.V), f(s.Theta), f(s.A), f(s.B), f(s.D), f(s.F))


@_checks.warns_nonfinite("recursion")
def relu_ntk_fluctuations_exact(x, *, n: int, L: int, lambda_b=1.0, lambda_W=1.0) -> NTKStats:
    r"""Exact-in-n single-input recursions for critical ReLU (:math:`C_b=0, C_W=2`, hidden widths n).

    Each ReLU neuron is symmetric under flipping the signs of its incoming weights and bias, so
    :math:`\Theta(z_j)` is a fair coin independent of everything even in :math:`z_j^2`, and the
    conditional moments given layer :math:`\ell` close exactly (G is the exact mean metric, constant):

    .. math::
       V' &= (1+\tfrac5n)V + 5G^2,\quad H' = \lambda_b + \lambda_W\tfrac G2 + H,\quad
       F' = 2GH + F + \tfrac{2D+3F}{n},\quad B' = 2H^2 + B + \tfrac{2A+3B}{n},\\
       D' &= \tfrac{\lambda_W}{2}V' + GH + D + \tfrac{D+4F}{n},\quad
       A' = \tfrac{\lambda_W^2}{4}V' + \lambda_W\big(GH + D + \tfrac{D+4F}{n}\big) + H^2 + A + \tfrac{A+4B}{n}.

    Derivation (checked by hand term by term): condition on layer :math:`\ell`; the new weights give
    :math:`\mu = \lambda_b + \tfrac{\lambda_W}{2}\hat G' + \tfrac2n\sum_j\Theta_j\hat H_{jj}`,
    :math:`E[\hat H'^2_{ik}] = \tfrac4{n^2}\sum_{jm}\Theta_j\Theta_m\hat H_{jm}^2`, etc.; then average each
    :math:`\Theta_j` to 1/2 (same neuron) or :math:`\Theta_j\Theta_m` to 1/4 (two neurons) and use the exact
    tensor decompositions (e.g. :math:`E[\hat H_{jj}z_j^2] = GH + (D+2F)/n`, :math:`E[\hat H_{jm}z_jz_m] = F/n`).
    As :math:`n\to\infty` these reduce to :func:`ntk_fluctuations` with ``activation="relu"``.

    Domain of validity (ours): the coin argument needs :math:`z_j \neq 0` almost surely. With
    :math:`C_b = 0` a layer whose n neurons are all off (probability :math:`\approx 2^{-n}`) sends exactly
    :math:`z = 0` to the next layer, whose :math:`\sigma'(0)` is then not a fair coin. If the NTK of that
    layer is zero too, nothing is lost; it is not when :math:`\lambda_b^{(\ell)} > 0` for some hidden
    :math:`2 \le \ell \le L-1`. So the recursions are exact at every n when :math:`\lambda_b^{(\ell)} = 0` for
    :math:`\ell = 2..L-1`, and otherwise exact up to terms of order :math:`L\,2^{-n}` (at n = 1, L = 4,
    :math:`\lambda_b = \lambda_W = 1`: 4 here against :math:`E[\hat H] \approx 2.75` in ensembles).

    Args:
      x: one input ``(n0,)``. n: hidden width (>= 1). L: depth. lambda_b, lambda_W: as above.
    Returns:
      :class:`NTKStats` (shape ``(L,)`` each; ``K`` holds the exact G).
    """
    fn = "relu_ntk_fluctuations_exact"
    _checks.finite(fn, x=x)
    _checks.positive_int(fn, n=n)
    lb, lw = _validate(fn, L, 0.0, 2.0, lambda_b, lambda_W)
    G, H = _first_layer(x, 0.0, 2.0, lb[0], lw[0])
    G, H = float(G), float(H)
    V = A = B = D = F = 0.0
    rows = [(G, V, H, A, B, D, F)]
    for ell in range(1, L):
        b, w = lb[ell], lw[ell]
        Vn = (1 + 5 / n) * V + 5 * G * G
        Dmix = G * H + D + (D + 4 * F) / n
        A, B, D, F, H = (w * w / 4 * Vn + w * Dmix + H * H + A + (A + 4 * B) / n,
                         2 * H * H + B + (2 * A + 3 * B) / n,
                         w / 2 * Vn + Dmix,
                         2 * G * H + F + (2 * D + 3 * F) / n,
                         b + w * G / 2 + H)
        V = Vn
        rows.append((G, V, H, A, B, D, F))
    arr = jnp.asarray(rows, dtype=jnp.result_type(float))
    return NTKStats(*(arr[:, k] for k in range(7)))


# --------------------------------------------------------------------------- closed forms per class

def _si_constants(activation, K, lambda_b, lambda_W, fn):
    act = get_activation(activation, fn)
    if not act.scale_invariant:
        raise _checks.PDLTValueError(f"{fn}: `activation` must be scale-invariant, got {act.name!r} ({act.family})")
    _checks.positive(fn, K=K)
    _checks.nonnegative(fn, lambda_b=lambda_b, lambda_W=lambda_W)
    A2 = act.slope_moment(2)
    A4 = act.slope_moment(4)
    theta = lambda_b + lambda_W * A2 * K
    if theta <= 0:
        raise _checks.PDLTValueError(f"{fn}: `lambda_b` and `lambda_W` are both zero: the NTK vanishes")
    kappa = A4 / A2**2
    return theta, lambda_W * A2 * K / theta, kappa, 3 * kappa - 1


@_checks.warns_nonfinite("recursion")
def scale_invariant_ntk_closed_form(ell, *, K, activation="relu", lambda_b=1.0, lambda_W=1.0) -> dict:
    r"""Leading-order H, F, B, D, A at layer ``ell`` for a critical scale-invariant MLP (PDLT §9.2).

    With :math:`A_2 = (a_+^2+a_-^2)/2`, :math:`A_4 = (a_+^4+a_-^4)/2`, :math:`\kappa = A_4/A_2^2`,
    :math:`\nu = 3\kappa-1`, :math:`\theta = \lambda_b + \lambda_W A_2K` and the weight fraction
    :math:`\rho = \lambda_W A_2 K/\theta` (constant learning rates, :math:`C_W = 1/A_2`, :math:`C_b=0`):

    .. math::
       H = \theta\ell,\quad F = \kappa K\theta\tfrac{\ell(\ell-1)}2,\quad B = \kappa\theta^2\tfrac{(\ell-1)\ell(2\ell-1)}6,\quad
       D = K\theta(\rho\nu+\kappa-1)\tfrac{\ell(\ell-1)}2,\\
       A = \theta^2\Big[\big((\kappa-1)(1+\rho)+\nu\rho^2\big)\tfrac{(\ell-1)\ell(2\ell-1)}6 + \rho(\kappa-1)\tfrac{\ell(\ell-1)}2\Big],

    obtained by summing the recursions of :func:`ntk_fluctuations` (χ = 1, h = 0 for this class).

    Args:
      ell: layer index or array of them (>= 1). K: the (preserved) kernel. lambda_b, lambda_W: scalars.
    Returns:
      dict with ``H, F, B, D, A`` arrays of ``ell``'s shape.
    """
    theta, rho, kappa, nu = _si_constants(activation, K, lambda_b, lambda_W, "scale_invariant_ntk_closed_form")
    l = jnp.asarray(ell, dtype=jnp.result_type(float))
    s1 = l * (l - 1) / 2
    s2 = (l - 1) * l * (2 * l - 1) / 6
    return {
        "H": theta * l,
        "F": kappa * K * theta * s1,
        "B": kappa * theta**2 * s2,
        "D": K * theta * (rho * nu + kappa - 1) * s1,
        "A": theta**2 * (((kappa - 1) * (1 + rho) + nu * rho**2) * s2 + rho * (kappa - 1) * s1),
    }


@_checks.warns_nonfinite("recursion")
def scale_invariant_mean_ntk(ell, *, C_W, g0=1.0, activation="relu", lambda_b=1.0, lambda_W=1.0):
    r"""Mean NTK of a scale-invariant MLP with :math:`C_b = 0` at any :math:`C_W` (PDLT §9.4; for ReLU exact in the width
    up to the O(L 2^-n) dead-layer terms of :func:`relu_ntk_fluctuations_exact` when λ_b > 0).

    With :math:`\chi = C_W A_2` (both susceptibilities) and :math:`g_0 = |x|^2/n_0`, every layer's weight term
    is transported to layer :math:`\ell` with the same total factor, so

    .. math:: H^{(\ell)} = \lambda_b\frac{\chi^\ell - 1}{\chi - 1} + \lambda_W\,g_0\,\ell\,\chi^{\ell-1}
              \quad(\lambda_b\,\ell \text{ at } \chi = 1):

    exponential in depth off criticality (exploding for :math:`\chi>1`, vanishing early-layer shares for :math:`\chi<1`).

    Args:
      ell: layer index or array (>= 1). C_W: > 0. g0: :math:`|x|^2/n_0` (>= 0). lambda_b, lambda_W: scalars >= 0.
    Returns:
      array of ``ell``'s shape.
    """
    fn = "scale_invariant_mean_ntk"
    act = get_activation(activation, fn)
    if not act.scale_invariant:
        raise _checks.PDLTValueError(f"{fn}: `activation` must be scale-invariant, got {act.name!r} ({act.family})")
    _checks.positive(fn, C_W=C_W)
    _checks.nonnegative(fn, g0=g0, lambda_b=lambda_b, lambda_W=lambda_W)
    chi = C_W * act.slope_moment(2)
    l = jnp.asarray(ell, dtype=jnp.result_type(float))
    bias = l if chi == 1.0 else (chi**l - 1) / (chi - 1)
    return lambda_b * bias + lambda_W * g0 * l * chi ** (l - 1)


def scale_invariant_ntk_slopes(*, K=1.0, activation="relu", lambda_b=1.0, lambda_W=1.0) -> dict:
    r"""Large-depth slopes (coefficients of :math:`\ell/n`) of the normalized fluctuations, scale-invariant class.

    :math:`F/(nKH)\to\kappa/2`, :math:`B/(nH^2)\to\kappa/3`, :math:`D/(nKH)\to(\rho\nu+\kappa-1)/2`,
    :math:`A/(nH^2)\to((\kappa-1)(1+\rho)+\nu\rho^2)/3`, and the relative NTK variance
    :math:`\mathrm{Var}(\hat H_{ii})/H^2 = (A+2B)/(nH^2)\to[(\kappa-1)(1+\rho)+\nu\rho^2+2\kappa]/3`
    (ReLU: :math:`(5+\rho+5\rho^2)/3`). Returns a dict with keys ``F, B, D, A, var_H, rho``.
    """
    _, rho, kappa, nu = _si_constants(activation, K, lambda_b, lambda_W, "scale_invariant_ntk_slopes")
    A = ((kappa - 1) * (1 + rho) + nu * rho**2) / 3
    return {"F": kappa / 2, "B": kappa / 3, "D": (rho * nu + kappa - 1) / 2, "A": A,
            "var_H": A + 2 * kappa / 3, "rho": rho}


def kstar0_ntk_slopes(tau) -> dict:
    r"""Large-depth slopes (coefficients of :math:`\ell/n`) for the K*=0 class with :math:`p_\perp = 1` (tanh, sin)
    under the learning-rate-equivalence scaling (PDLT §9.3): :math:`F/(nK\Theta)\to1/4`,
    :math:`B/(n\Theta^2)\to1/3`, :math:`D/(nK\Theta)\to-2\tau/9`, :math:`A/(n\Theta^2)\to4\tau^2/27`,
    with :math:`\tau = \tilde\lambda_b/\Theta^\star` the bias fraction of the asymptotic NTK.

    Returns a dict with keys ``F, B, D, A, var_H`` (``var_H = A + 2B``).
    """
    _checks.nonnegative("kstar0_ntk_slopes", tau=tau)
    A = 4 * tau**2 / 27
    return {"F": 0.25, "B": 1 / 3, "D": -2 * tau / 9, "A": A, "var_H": A + 2 / 3}


def relative_ntk_variance(stats: NTKStats, n) -> jax.Array:
    r"""Relative variance of a diagonal NTK entry, :math:`\mathrm{Var}(\hat H_{ii})/H^2 = (A + 2B)/(nH^2)`."""
    _checks.positive("relative_ntk_variance", n=n)
    return (stats.A + 2 * stats.B) / (n * stats.H**2)


# --------------------------------------------------------------------------- learning-rate equivalence

def perpendicular_exponent(activation) -> float:
    r"""Critical exponent :math:`p_\perp = b_1/a_1` of the K*=0 class (PDLT §5.3.3, numbering unverified),
    with :math:`a_1, b_1` from :func:`pdlt.kstar_zero_coefficients` (tanh and sin: 1).
    Raises PDLTValueError for activations outside the K*=0 class or with a_1 >= 0."""
    c = _kstar0_coefficients(activation, "perpendicular_exponent")
    return c.b1 / c.a1


def _kstar0_coefficients(activation, fn="perpendicular_exponent"):
    """:func:`pdlt.kstar_zero_coefficients` for an activation of the K*=0 family with a_1 < 0, else PDLTValueError."""
    act = get_activation(activation, fn)
    if act.family != "K*=0":
        raise _checks.PDLTValueError(f"{fn}: `activation` {act.name!r} is not in the K*=0 class ({act.family})")
    c = kstar_zero_coefficients(act)
    if c.a1 >= 0:
        raise _checks.PDLTValueError(f"{fn}: {act.name!r} has a_1 = {c.a1:.3g} >= 0 (no K*=0 fixed point)")
    return c


def ntk_critical_init(activation) -> tuple[float, float]:
    r"""Critical :math:`(C_b, C_W)` for the two classes with a learning-rate-equivalence scaling (PDLT §5.2-§5.3):
    scale-invariant :math:`(0, 1/A_2)` (ReLU: (0, 2)); K*=0 :math:`(0, 1/\sigma_1^2)` (tanh, sin: (0, 1)).
    The values are those of :func:`pdlt.critical_point`.

    Raises:
      PDLTValueError for other classes.
    """
    act = get_activation(activation, "ntk_critical_init")
    if not act.scale_invariant:
        _kstar0_coefficients(act, "ntk_critical_init")
    c = critical_point(act)
    return c.C_b, c.C_W


def equivalent_learning_rates(L: int, activation="relu", *, lambda_b_tilde=1.0, lambda_W_tilde=1.0):
    r"""Per-layer learning rates that make every layer contribute equally to :math:`\Theta^{(L)}` (PDLT §9.4).

    * scale-invariant class: :math:`\lambda_b^{(\ell)} = \tilde\lambda_b/L`, :math:`\lambda_W^{(\ell)} = \tilde\lambda_W/L`,
      so that :math:`\Theta^{(L)} = \tilde\lambda_b + \tilde\lambda_W A_2 K^\star` at criticality (for ReLU exactly in n, up to O(L 2^-n) when λ_b > 0);
    * K*=0 class: :math:`\lambda_b^{(\ell)} = \tilde\lambda_b\,\ell^{-p_\perp}L^{p_\perp-1}`,
      :math:`\lambda_W^{(\ell)} = \tilde\lambda_W(L/\ell)^{p_\perp-1}`, so that :math:`\Theta^{(L)}\to\tilde\lambda_b + \tilde\lambda_W\sigma_1^2/(-a_1)`.

    Args:
      L: depth. activation: registry name. lambda_b_tilde, lambda_W_tilde: >= 0.
    Returns:
      ``(lambda_b, lambda_W)``, two tuples of L floats (layer 1..L).
    Raises:
      PDLTValueError for a bad depth, negative rates, or an activation outside these two classes.
    """
    fn = "equivalent_learning_rates"
    _checks.positive_int(fn, L=L)
    _checks.nonnegative(fn, lambda_b_tilde=lambda_b_tilde, lambda_W_tilde=lambda_W_tilde)
    act = get_activation(activation, fn)
    if act.scale_invariant:
        return (float(lambda_b_tilde) / L,) * L, (float(lambda_W_tilde) / L,) * L
    if act.family != "K*=0":
        raise _checks.PDLTValueError(
            f"{fn}: no learning-rate-equivalence scaling for {act.name!r} ({act.family}); "
            "use a scale-invariant or K*=0 activation")
    p = perpendicular_exponent(act.name)
    ls = range(1, L + 1)
    return (tuple(float(lambda_b_tilde) * ell ** (-p) * L ** (p - 1) for ell in ls),
            tuple(float(lambda_W_tilde) * (L / ell) ** (p - 1) for ell in ls))


def kstar0_asymptotic_ntk(activation, *, lambda_b_tilde=1.0, lambda_W_tilde=1.0) -> float:
    r""":math:`\Theta^\star = \tilde\lambda_b + \tilde\lambda_W\sigma_1^2/(-a_1)`, the deep limit of the NTK of a critical
    K*=0 network under :func:`equivalent_learning_rates` (tanh: :math:`\tilde\lambda_b + \tilde\lambda_W/2`)."""
    _checks.nonnegative("kstar0_asymptotic_ntk", lambda_b_tilde=lambda_b_tilde, lambda_W_tilde=lambda_W_tilde)
    c = _kstar0_coefficients(activation, "kstar0_asymptotic_ntk")
    return float(lambda_b_tilde + lambda_W_tilde * c.sigma1**2 / (-c.a1))

