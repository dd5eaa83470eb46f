r"""Leading-order statistics of the dNTK at initialization: the tensors P and Q (PDLT §11.2), for N inputs.

Definitions (the book's objects; the recursions below are derived by us). The dNTK of output neurons
:math:`i_0, i_1, i_2` is :math:`\widehat{dH}_{i_0i_1i_2;\alpha_0\alpha_1\alpha_2} = \sum_{\mu\nu}\lambda_{\mu\nu}
\partial_\mu\hat H_{i_1i_2;\alpha_1\alpha_2}\,\partial_\nu z_{i_0;\alpha_0}`; its mean vanishes by parity and its
correlator with one preactivation is, at leading order in the width n of the previous layer,

.. math::
   E[\widehat{dH}_{i_0i_1i_2;\alpha_0\alpha_1\alpha_2} z_{i_3;\alpha_3}] = \frac1n\big[
     \delta_{i_0i_3}\delta_{i_1i_2}P_{\alpha_0\alpha_1\alpha_2\alpha_3}
   + \delta_{i_0i_1}\delta_{i_2i_3}Q_{\alpha_0\alpha_1\alpha_2\alpha_3}
   + \delta_{i_0i_2}\delta_{i_1i_3}Q_{\alpha_0\alpha_2\alpha_1\alpha_3}\big],

so :math:`P_{\alpha_0\alpha_1\alpha_2\alpha_3} = P_{\alpha_0\alpha_2\alpha_1\alpha_3}`. Both vanish in the first layer
(:math:`\hat H^{(1)}` does not depend on the parameters).

Forward equation (exact). With :math:`M_{jk;\alpha\beta} = \sigma'_{j;\alpha}\sigma'_{k;\beta}\hat H_{jk;\alpha\beta}`
of layer :math:`\ell`, the next layer's dNTK has three parts: (a) the gradient along the new weights,
:math:`\tfrac{\lambda_W}{n}[\delta_{i_0i_1}\sum_{jk}\sigma_{j;\alpha_0}M_{jk}W_{i_2k} + (1\leftrightarrow2)]`;
(b1) the layer-:math:`\ell` parameters acting on the weight term of the NTK,
:math:`\delta_{i_1i_2}\tfrac{\lambda_W}{n}\sum_{jk}W_{i_0k}\sigma'_{k;\alpha_0}[\sigma'_{j;\alpha_1}\sigma_{j;\alpha_2}\hat H_{jk;\alpha_1\alpha_0} + (1\leftrightarrow2)]`;
(b2) the same on the chain term, :math:`\sum W_{i_1j_1}W_{i_2j_2}W_{i_0k}\sigma'_{k;\alpha_0}[\sigma''_{j_1;\alpha_1}\sigma'_{j_2;\alpha_2}
\hat H_{j_1j_2}\hat H_{j_1k;\alpha_1\alpha_0} + \sigma'_{j_1}\sigma''_{j_2}\hat H_{j_1j_2}\hat H_{j_2k;\alpha_2\alpha_0}
+ \sigma'_{j_1}\sigma'_{j_2}\widehat{dH}_{kj_1j_2}]`.

Recursion (ours). Multiply by :math:`z'_{i_3} = b_{i_3} + \sum_m W_{i_3m}\sigma_m`, average the fresh weights
(Wick), and expand the remaining sums over layer-:math:`\ell` neurons: a diagonal sum :math:`\tfrac1{n^2}\sum_j`
gives a Gaussian average times Θ; an off-diagonal NTK entry :math:`\hat H_{jk}` (j ≠ k) correlates with
:math:`f(z_j)g(z_k)` only through :math:`F`, :math:`E[\hat H_{jk;\alpha\beta}f(z_j)g(z_k)] = \tfrac1n\sum F_{\alpha\beta_1\beta\beta_2}
\langle\partial_{\beta_1}f\rangle\langle\partial_{\beta_2}g\rangle`; a pair of off-diagonal entries gives :math:`B`; the
layer-:math:`\ell` dNTK gives P and Q. With all averages at :math:`K = K^{(\ell)}`, :math:`\lambda_W = \lambda_W^{(\ell+1)}`,
the Stein form :math:`\langle\partial_\beta f\rangle = \sum_\gamma (K^{-1})_{\beta\gamma}\langle z_\gamma f\rangle`, and the
tensors :math:`D^{s}_{\beta;xy} = \langle\partial_\beta(\sigma_x\sigma'_y)\rangle`, :math:`D^{2}_{\beta;xy} = \langle\partial_\beta(\sigma'_x\sigma''_y)\rangle`:

.. math::
   Q'_{0123} &= \lambda_WC_W\Big[\langle\sigma_0\sigma'_1\sigma'_2\sigma_3\rangle\Theta_{12}
      + \textstyle\sum F_{1\beta2\gamma}D^s_{\beta;01}D^s_{\gamma;32}\Big]
    + C_W^2\Big[\langle\sigma'_0\sigma''_1\sigma'_2\sigma_3\rangle\Theta_{12}\Theta_{10}
      + \langle\sigma'_0\sigma'_1\sigma''_2\sigma_3\rangle\Theta_{12}\Theta_{20}\\
   &\qquad + \Theta_{10}\textstyle\sum F_{1\beta2\gamma}D^2_{\beta;01}D^s_{\gamma;32}
      + B_{1022}\langle\sigma'_0\sigma'_1\rangle\langle\sigma''_2\sigma_3\rangle
      + \textstyle\sum_\beta Q_{012\beta}\langle\sigma'_0\sigma'_1\rangle D^s_{\beta;32}\Big],\\
   P'_{0123} &= \lambda_WC_W\Big[\langle\sigma_2\sigma'_1\sigma'_0\sigma_3\rangle\Theta_{10}
      + \langle\sigma_1\sigma'_2\sigma'_0\sigma_3\rangle\Theta_{20}
      + \textstyle\sum (F_{1\beta0\gamma}D^s_{\beta;21} + F_{2\beta0\gamma}D^s_{\beta;12})D^s_{\gamma;30}\Big]\\
   &\quad + C_W^2\Big[\langle\sigma'_0\sigma''_1\sigma'_2\sigma_3\rangle\Theta_{12}\Theta_{10}
      + \langle\sigma'_0\sigma'_1\sigma''_2\sigma_3\rangle\Theta_{12}\Theta_{20}
      + \Theta_{12}\textstyle\sum (F_{1\beta0\gamma}D^2_{\beta;21} + F_{2\beta0\gamma}D^2_{\beta;12})D^s_{\gamma;30}
      + \textstyle\sum_\beta P_{012\beta}\langle\sigma'_1\sigma'_2\rangle D^s_{\beta;30}\Big]

(digits are the input indices :math:`\alpha_0..\alpha_3`; F and B in the convention of
``/shared/reference/finite-width.md``: :math:`E[\Delta\hat H_{i_1i_2;\alpha_1\alpha_2}z_{i_3;\alpha_3}z_{i_4;\alpha_4}]\ni\delta_{i_1i_3}\delta_{i_2i_4}F_{\alpha_1\alpha_3\alpha_2\alpha_4}/n`).
P and Q do not mix, and neither A, D nor V enters at this order. The F and B used here follow from the
same expansion: :math:`F'_{1324} = C_W^2[\langle\sigma'_1\sigma_3\sigma'_2\sigma_4\rangle\Theta_{12} + \sum F_{1\beta2\gamma}D^s_{\beta;31}D^s_{\gamma;42}]`,
:math:`B'_{1324} = C_W^2[\langle\sigma'_1\sigma'_2\sigma'_3\sigma'_4\rangle\Theta_{12}\Theta_{34} + \langle\sigma'_1\sigma'_3\rangle\langle\sigma'_2\sigma'_4\rangle B_{1324}]`
(for one input they reduce to those of :func:`pdlt.ntk_fluctuations`).

Kinks. For the scale-invariant family :math:`\sigma'' = (a_+-a_-)\delta(z)`. ``kink="distributional"`` keeps the
delta terms, :math:`\langle\delta(z_a)G\rangle = E[G\mid z_a=0]/\sqrt{2\pi K_{aa}}` with :math:`\sigma'(0) = (a_++a_-)/2`
(the limit of smooth activations; it describes the ensemble-averaged motion of the NTK, whose
activation pattern changes when a preactivation crosses zero); ``kink="almost-everywhere"`` drops them,
which is what the per-network autodiff dNTK (:func:`pdlt.empirical_dntk`) computes, since it differentiates
:math:`\sigma'` as a step function. For one input the two agree (:math:`\sigma(0) = 0`, :math:`z\delta(z) = 0`).
Gaussian averages of kinked products are exact (polar integration, :func:`pdlt.scale_invariant_expectation2`) for
N <= 2; N = 3 kinked inputs raise. Smooth activations use tensor Gauss-Hermite (N <= 3).
"""
from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._activations import get_activation
from ._gaussian import _grid_np, psd_factor, scale_invariant_expectation2

__all__ = ["DNTKStatistics", "dntk_statistics", "dntk_recursion_step", "dntk_gaussian_moments",
           "dntk_statistics_single", "scale_invariant_dntk_closed_form", "deep_linear_dntk_closed_form",
           "kstar0_dntk_slopes", "ddntk_second_layer"]

KINKS = ("distributional", "almost-everywhere")


class DNTKStatistics(NamedTuple):
    """Per-layer leading-order statistics for N inputs; entry ``ell-1`` is layer ``ell``.

    K, Theta: ``(L, N, N)`` (infinite-width kernel and NTK); F, B: ``(L, N, N, N, N)`` (NTK-preactivation
    and NTK-NTK tensors, coefficients of 1/n); P, Q: ``(L, N, N, N, N)`` (dNTK tensors, coefficients of 1/n).
    """

    K: jax.Array
    Theta: jax.Array
    F: jax.Array
    B: jax.Array
    P: jax.Array
    Q: jax.Array


# --------------------------------------------------------------------------- Gaussian averages

_DEGREE = {"s": 1, "d": 0, "dd": 0, "z": 1}


def _kinked(act):
    return act.scale_invariant and act.a_plus != act.a_minus


def _funcs(act, kind):
    return {"s": act.sigma, "d": act.dsigma, "dd": act.d2sigma, "z": lambda z: z}[kind]


def _einsum_moment(vals, w):
    letters = "abcd"[:len(vals)]
    spec = "p," + ",".join(f"p{c}" for c in letters) + "->" + letters
    return jnp.einsum(spec, w, *vals, optimize=True)


def _smooth_moment(act, K, kinds, deg):
    N = K.shape[0]
    X, W = _grid_np(N, deg)
    z = jnp.asarray(X, K.dtype) @ psd_factor(K).T
    return _einsum_moment([_funcs(act, k)(z) for k in kinds], jnp.asarray(W, K.dtype))


def _si_dsigma_mid(act):
    ap, am = act.a_plus, act.a_minus
    return lambda z: jnp.where(z > 0, ap, jnp.where(z < 0, am, 0.5 * (ap + am))) * jnp.ones_like(z)


def _si_moment(act, K, kinds, kink):
    """Exact <prod f_k(z_{a_k})> for the scale-invariant family, N <= 2 (polar integration; delta rule)."""
    N = K.shape[0]
    if "dd" not in kinds:
        K2 = K if N == 2 else jnp.array([[K[0, 0], 0.0], [0.0, 1.0]], K.dtype)
        degree = sum(_DEGREE[k] for k in kinds)

        def f(z):
            zz = z[:, :N]
            return _outer_tensor([_funcs(act, k)(zz) for k in kinds])

        return scale_invariant_expectation2(f, K2, degree)
    if kinds.count("dd") > 1:
        raise _checks.PDLTValueError("dntk_gaussian_moments: two second derivatives in one average (not needed here)")
    shape = (N,) * len(kinds)
    if kink == "almost-everywhere" or act.a_plus == act.a_minus:
        return jnp.zeros(shape, K.dtype)
    pos = kinds.index("dd")
    degree = sum(_DEGREE[k] for k in kinds)
    c_d = 2.0 ** (degree / 2) * math.gamma((degree + 1) / 2) / (2 * math.sqrt(math.pi))  # E[u^d; u > 0]
    dmid = _si_dsigma_mid(act)
    fn = {"s": act.sigma, "d": dmid, "z": lambda z: z}
    out = []
    for a in range(N):   # the coordinate carrying the delta function
        if N == 1:
            pts = jnp.zeros((1, 1), K.dtype)
            wts = jnp.ones(1, K.dtype) if degree == 0 else jnp.zeros(1, K.dtype)
        else:
            b = 1 - a
            s = jnp.sqrt(jnp.clip(K[b, b] - K[a, b] ** 2 / K[a, a], 0.0))
            pts = jnp.zeros((2, 2), K.dtype).at[0, b].set(s).at[1, b].set(-s)
            wts = jnp.full(2, c_d, K.dtype)
        vals = [fn[k](pts) if k != "dd" else jnp.zeros_like(pts).at[:, a].set(1.0) for k in kinds]
        t = _einsum_moment(vals, wts)
        out.append(jnp.take(t, a, axis=pos))   # the dd factor fixes its index to a
        # the weight of the delta: (a+ - a-) / sqrt(2 pi K_aa)
        out[-1] = out[-1] * (act.a_plus - act.a_minus) / jnp.sqrt(2 * jnp.pi * K[a, a])
    return jnp.stack(out, axis=pos)


def _outer_tensor(vals):
    """Pointwise outer product of per-point vectors: ``(P, N) x k -> (P, N, ..., N)``."""
    P, N = vals[0].shape
    t = vals[0]
    for v in vals[1:]:
        t = t[..., None] * v.reshape((P,) + (1,) * (t.ndim - 1) + (N,))
    return t


def dntk_gaussian_moments(activation, K, *, kink: str = "distributional", deg: int | None = None) -> dict:
    r"""The Gaussian averages at kernel K (N x N) that drive the P, Q, F, B recursions (module docstring).

    Returns a dict: ``T1[0123] = <σ_0σ'_1σ'_2σ_3>``, ``T4 = <σ'σ'σ'σ'>``, ``T2 = <σ'_0σ''_1σ'_2σ_3>``,
    ``T3 = <σ'_0σ'_1σ''_2σ_3>``, ``Ds[β,x,y] = <∂_β(σ_xσ'_y)>``, ``D2[β,x,y] = <∂_β(σ'_xσ''_y)>``,
    ``Edd = <σ'σ'>``, ``E2s[x,y] = <σ''_xσ_y>``.

    Raises: PDLTValueError for an activation without the needed derivatives, a kinked activation with
      N > 2, or a bad ``kink``.
    """
    fn = "dntk_gaussian_moments"
    _checks.one_of(fn, "kink", kink, KINKS)
    act = get_activation(activation, fn)
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    N = K.shape[0]
    if K.ndim != 2 or K.shape[1] != N or N > 3:
        raise _checks.PDLTValueError(f"{fn}: `K` must be (N, N) with N <= 3, got {K.shape}")
    if _kinked(act):
        if N > 2:
            raise _checks.PDLTValueError(
                f"{fn}: exact averages of the kinked activation {act.name!r} are implemented for N <= 2 inputs, got N={N}")
    elif not act.smooth:
        raise _checks.PDLTValueError(
            f"{fn}: `activation` {act.name!r} ({act.family}) has no usable second derivative; "
            "use a smooth activation or the scale-invariant family")
    return _moments(K, act.name, kink, deg or {1: 128, 2: 96, 3: 64}[N])


@partial(jax.jit, static_argnames=("name", "kink", "deg"))
def _moments(K, name, kink, deg):
    act = get_activation(name)
    if _kinked(act):
        mom = lambda kinds: _si_moment(act, K, kinds, kink)  # noqa: E731
    else:
        mom = lambda kinds: _smooth_moment(act, K, kinds, deg)  # noqa: E731
    Ki = jnp.linalg.inv(K)
    T2 = mom(("d", "dd", "d", "s"))
    return {
        "T1": mom(("s", "d", "d", "s")),
        "T4": mom(("d", "d", "d", "d")),
        "T2": T2,
        "T3": jnp.swapaxes(T2, 1, 2),   # <σ'_0σ'_1σ''_2σ_3> = T2 with its middle indices exchanged (exactly)
        "Ds": jnp.einsum("bg,gxy->bxy", Ki, mom(("z", "s", "d"))),
        "D2": jnp.einsum("bg,gxy->bxy", Ki, mom(("z", "d", "dd"))),
        "Edd": mom(("d", "d")),
        "E2s": mom(("dd", "s")),
    }


# --------------------------------------------------------------------------- the recursion

@jax.jit
def dntk_recursion_step(m: dict, Theta, F, B, P, Q, *, C_W, lambda_W):
    r"""One layer of the leading-order recursions: ``(F', B', P', Q')`` of layer ℓ+1 from layer ℓ.

    Args:
      m: :func:`dntk_gaussian_moments` at :math:`K^{(\ell)}`. Theta: ``(N, N)``.
      F, B, P, Q: ``(N,)*4`` of layer ℓ. C_W: weight variance.
      lambda_W: the weight learning rate of layer ℓ+1.
    Returns:
      ``(F', B', P', Q')``.

    The equations are in the module docstring (term by term: weight gradient of the new layer,
    previous parameters on the weight term, on the chain term).
    """
    T1, T2, T3, T4, Ds, D2, Edd, E2s = (m[k] for k in ("T1", "T2", "T3", "T4", "Ds", "D2", "Edd", "E2s"))
    C, lw = C_W, lambda_W
    Dss = jnp.swapaxes(Ds, 1, 2)                 # Dss[b, x, y] = <∂_b(σ'_x σ_y)>
    # F'_{1324}: E[ΔH_{12} z_3 z_4] with i1=i3, i2=i4
    Fn = C**2 * (jnp.einsum("acbd,ab->acbd", jnp.einsum("cabd->acbd", T1), Theta)
                 + jnp.einsum("apbq,pac,qbd->acbd", F, Dss, Dss))
    Bn = C**2 * (jnp.einsum("acbd,ab,cd->acbd", T4, Theta, Theta)
                 + jnp.einsum("ac,bd,acbd->acbd", Edd, Edd, B))
    # Q'
    Qa = lw * C * (T1 * Theta[None, :, :, None] + jnp.einsum("apbq,pxa,qby->xaby", F, Ds, Dss))
    Bdiag = jnp.einsum("axbb->axb", B)           # B_{1022} as [a1, a0, a2]
    Qb = C**2 * (T2 * (Theta[None, :, :, None] * jnp.swapaxes(Theta, 0, 1)[:, :, None, None])
                 + T3 * (Theta[None, :, :, None] * Theta.T[:, None, :, None])
                 + jnp.einsum("ax,apbq,pxa,qby->xaby", Theta, F, D2, Dss)
                 + jnp.einsum("axb,xa,by->xaby", Bdiag, Edd, E2s)
                 + jnp.einsum("xabq,xa,qby->xaby", Q, Edd, Dss))
    Qn = Qa + Qb
    # P'
    Pa = lw * C * (jnp.einsum("baxy,ax->xaby", T1, Theta) + jnp.einsum("abxy,bx->xaby", T1, Theta)
                   + jnp.einsum("apxq,pab,qxy->xaby", F, Dss, Dss)
                   + jnp.einsum("bpxq,pab,qxy->xaby", F, Ds, Dss))
    Pb = C**2 * (T2 * (Theta[None, :, :, None] * jnp.swapaxes(Theta, 0, 1)[:, :, None, None])
                 + T3 * (Theta[None, :, :, None] * Theta.T[:, None, :, None])
                 + jnp.einsum("ab,apxq,pba,qxy->xaby", Theta, F, D2, Dss)
                 + jnp.einsum("ab,bpxq,pab,qxy->xaby", Theta, F, D2, Dss)
                 + jnp.einsum("xabq,ab,qxy->xaby", P, Edd, Dss))
    return Fn, Bn, Pa + Pb, Qn


def _validate_common(fn, x, L, C_b, C_W, lambda_b, lambda_W, kink):
    _checks.positive_int(fn, L=L)
    _checks.nonnegative(fn, C_b=C_b)
    _checks.positive(fn, C_W=C_W)
    _checks.one_of(fn, "kink", kink, KINKS)
    lb, lw = _checks.per_layer_rates(fn, lambda_b, lambda_W, L)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2 or x.shape[0] > 3:
        raise _checks.PDLTValueError(f"{fn}: `x` must have shape (N, n0) with N <= 3, got {x.shape}")
    if not bool(jnp.all(jnp.isfinite(x))):
        raise _checks.PDLTValueError(f"{fn}: `x` must be finite")
    return x, lb, lw


@_checks.warns_nonfinite("recursion")
def dntk_statistics(x, *, C_b, C_W, L: int, activation="relu", lambda_b=1.0, lambda_W=1.0,
                    kink: str = "distributional") -> DNTKStatistics:
    r"""Leading-order K, Θ, F, B, P, Q of layers 1..L for N <= 3 inputs (module docstring; PDLT §11.2).

    Args:
      x: inputs ``(N, n0)`` (distinct, so that K is invertible).
      C_b, C_W: initialization (scalars). L: depth. activation: registry name (smooth, or scale-invariant with N <= 2).
      lambda_b, lambda_W: learning rates, scalars or per-layer sequences of length L.
      kink: ``"distributional"`` or ``"almost-everywhere"`` (matters only for kinked activations and N >= 2).
    Returns: :class:`DNTKStatistics` (P, Q, F, B coefficients of 1/n; layer 1: all zero).
    Raises: PDLTValueError before any compute for bad arguments.
    """
    fn = "dntk_statistics"
    x, lb, lw = _validate_common(fn, x, L, C_b, C_W, lambda_b, lambda_W, kink)
    act = get_activation(activation, fn)
    if _kinked(act) and x.shape[0] > 2:
        raise _checks.PDLTValueError(f"{fn}: kinked activation {act.name!r} supports N <= 2 inputs, got N={x.shape[0]}")
    if not (act.scale_invariant or act.smooth):
        raise _checks.PDLTValueError(f"{fn}: `activation` {act.name!r} has no usable second derivative")
    from ._ntk import ntk_recursion

    Ks, Ts = ntk_recursion(x, C_b=C_b, C_W=C_W, L=L, activation=act.name, lambda_b=lb, lambda_W=lw)
    Ks, Ts = (0.5 * (M + jnp.swapaxes(M, 1, 2)) for M in (Ks, Ts))   # exactly symmetric (quadrature is not)
    N = x.shape[0]
    z4 = jnp.zeros((N,) * 4, Ks.dtype)
    F = B = P = Q = z4
    out = [(F, B, P, Q)]
    for ell in range(1, L):
        m = dntk_gaussian_moments(act.name, Ks[ell - 1], kink=kink)
        F, B, P, Q = dntk_recursion_step(m, Ts[ell - 1], F, B, P, Q, C_W=float(C_W), lambda_W=lw[ell])
        out.append((F, B, P, Q))
    Fs, Bs, Ps, Qs = (jnp.stack([o[k] for o in out]) for k in range(4))
    return DNTKStatistics(Ks, Ts, Fs, Bs, Ps, Qs)


# --------------------------------------------------------------------------- one input, any depth

@_checks.warns_nonfinite("recursion")
def dntk_statistics_single(x, *, C_b, C_W, L: int, activation="relu", lambda_b=1.0, lambda_W=1.0) -> dict:
    r"""Single-input P and Q for layers 1..L, vectorized over layers (any depth, e.g. :math:`L = 10^4`).

    The N = 1 case of :func:`dntk_statistics`, with K, Θ (= H), F, B from :func:`pdlt.ntk_fluctuations`:

    .. math::
       Q' &= \lambda_WC_W[\langle\sigma^2\sigma'^2\rangle H + D_s^2F] + C_W^2[2\langle\sigma'^2\sigma''\sigma\rangle H^2
             + D_2D_sHF + \langle\sigma'^2\rangle\langle\sigma''\sigma\rangle B + \langle\sigma'^2\rangle D_sQ],\\
       P' &= 2\lambda_WC_W[\langle\sigma^2\sigma'^2\rangle H + D_s^2F] + C_W^2[2\langle\sigma'^2\sigma''\sigma\rangle H^2
             + 2D_2D_sHF + \langle\sigma'^2\rangle D_sP],

    :math:`D_s = \langle z\sigma\sigma'\rangle/K = \chi_\parallel/C_W`, :math:`D_2 = \langle z\sigma'\sigma''\rangle/K`.
    For the scale-invariant family every σ'' term vanishes (σ(0) = 0 and zδ(z) = 0).
    Args: x: one input ``(n0,)``; the rest as :func:`dntk_statistics`. Returns: dict ``K, H, F, B, P, Q`` of shape ``(L,)``.
    """
    fn = "dntk_statistics_single"
    _checks.positive_int(fn, L=L)
    act = get_activation(activation, fn)
    if not (act.scale_invariant or act.smooth):
        raise _checks.PDLTValueError(f"{fn}: `activation` {act.name!r} has no usable second derivative")
    from ._criticality import dense_expectation
    from ._ntk_fluctuations import ntk_fluctuations

    st = ntk_fluctuations(x, C_b=C_b, C_W=C_W, L=L, activation=act.name, lambda_b=lambda_b, lambda_W=lambda_W)
    _, lw = _checks.per_layer_rates(fn, lambda_b, lambda_W, L)
    K = st.K[:-1]
    s, ds, d2 = act.sigma, act.dsigma, act.d2sigma
    T1 = dense_expectation(lambda z: (s(z) * ds(z)) ** 2, K)
    Ds = dense_expectation(lambda z: z * s(z) * ds(z), K) / K
    Edd = dense_expectation(lambda z: ds(z) ** 2, K)
    if act.scale_invariant:
        T2 = D2 = E2s = jnp.zeros_like(K)
    else:
        T2 = dense_expectation(lambda z: ds(z) ** 2 * d2(z) * s(z), K)
        D2 = dense_expectation(lambda z: z * ds(z) * d2(z), K) / K
        E2s = dense_expectation(lambda z: d2(z) * s(z), K)
    C = float(C_W)
    H, F, B = st.H[:-1], st.F[:-1], st.B[:-1]
    w = jnp.asarray(lw[1:], K.dtype)
    a = w * C * (T1 * H + Ds**2 * F)
    qsrc = a + C**2 * (2 * T2 * H**2 + D2 * Ds * H * F + Edd * E2s * B)
    psrc = 2 * a + C**2 * (2 * T2 * H**2 + 2 * D2 * Ds * H * F)
    g = C**2 * Edd * Ds

    def step(c, inp):
        P, Q = c
        gg, ps, qs = inp
        new = (gg * P + ps, gg * Q + qs)
        return new, new

    z = jnp.zeros((), K.dtype)
    _, (P, Q) = jax.lax.scan(step, (z, z), (g, psrc, qsrc))
    P = jnp.concatenate([z[None], P])
    Q = jnp.concatenate([z[None], Q])
    return {"K": st.K, "H": st.H, "F": st.F, "B": st.B, "P": P, "Q": Q}


# --------------------------------------------------------------------------- closed forms

def scale_invariant_dntk_closed_form(ell, *, K, activation="relu", lambda_b=1.0, lambda_W=1.0) -> dict:
    r"""Single-input P, Q at layer ``ell`` of a critical scale-invariant MLP (:math:`C_b = 0`, :math:`C_W = 1/A_2`; ours).

    With χ = 1 and every σ'' term zero, the recursion of :func:`dntk_statistics_single` becomes
    :math:`Q' = Q + \lambda_WA_2K(\kappa H + F/K)` with :math:`H = \theta\ell`, :math:`F = \kappa K\theta\ell(\ell-1)/2`
    (PDLT §9.2 as in :func:`pdlt.scale_invariant_ntk_closed_form`), so with :math:`\rho = \lambda_WA_2K/\theta`:

    .. math:: Q^{(\ell)} = \rho\kappa\theta^2\frac{(\ell-1)\ell(\ell+1)}{6},\qquad P^{(\ell)} = 2Q^{(\ell)},\qquad
              \frac{Q^{(\ell)}}{n\,(H^{(\ell)})^2} \to \frac{\rho\kappa}{6}\,\frac{\ell}{n}

    (ReLU: κ = 2, so :math:`P/(nH^2)\to\tfrac23\rho\,\ell/n`). Returns dict ``H, P, Q`` (arrays of ``ell``'s shape).
    """
    from ._ntk_fluctuations import _si_constants

    theta, rho, kappa, _ = _si_constants(activation, K, lambda_b, lambda_W, "scale_invariant_dntk_closed_form")
    l = jnp.asarray(ell, dtype=jnp.result_type(float))
    Q = rho * kappa * theta**2 * (l - 1) * l * (l + 1) / 6
    return {"H": theta * l, "P": 2 * Q, "Q": Q, "slope_P": rho * kappa / 3, "slope_Q": rho * kappa / 6}


def deep_linear_dntk_closed_form(ell, *, K, lambda_b=1.0, lambda_W=1.0) -> dict:
    r"""Deep linear network at :math:`C_W = 1`, :math:`C_b = 0` (σ' = 1, σ'' = 0; ours), N inputs with kernel K (N x N).

    :math:`\Theta^{(\ell)} = \ell(\lambda_b + \lambda_WK)`, :math:`F^{(\ell)}_{1324} = \sum_{m<\ell}K_{34}\Theta^{(m)}_{12}`, and
    :math:`Q'_{0123} = Q_{0123} + \lambda_W(K_{03}\Theta_{12} + F_{1023})`, :math:`P'_{0123} = P_{0123} + \lambda_W(K_{23}\Theta_{10} + F_{1203} + K_{13}\Theta_{20} + F_{2103})`;
    summed, with :math:`\theta = \lambda_b + \lambda_W K` (elementwise):

    .. math:: Q^{(\ell)}_{0123} = \lambda_W K_{03}\theta_{12}\tfrac{(\ell-1)\ell(\ell+1)}{6},\qquad
              P^{(\ell)}_{0123} = \lambda_W (K_{23}\theta_{10} + K_{13}\theta_{20})\tfrac{(\ell-1)\ell(\ell+1)}{6}.

    Returns dict ``P, Q`` of shape ``(N,)*4`` at the scalar layer ``ell``.
    """
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    th = lambda_b + lambda_W * K
    c = (ell - 1) * ell * (ell + 1) / 6
    Q = lambda_W * jnp.einsum("xy,ab->xaby", K, th) * c
    P = lambda_W * (jnp.einsum("by,ax->xaby", K, th) + jnp.einsum("ay,bx->xaby", K, th)) * c
    return {"P": P, "Q": Q}


def kstar0_dntk_slopes(*, lambda_b=0.0) -> dict:
    r"""Large-depth slopes of :math:`P/(nH^2)` and :math:`Q/(nH^2)` in :math:`\ell/n` for the K*=0 class at criticality (ours).

    With :math:`\sigma(z) = \sigma_1(z + c\,z^3/6) + \dots` (:math:`c = \sigma_3/\sigma_1 < 0`; tanh: c = -2), :math:`C_W = 1/\sigma_1^2`,
    :math:`C_b = 0` and constant learning rates, the small-K expansion of the averages in
    :func:`dntk_statistics_single` (:math:`K\simeq -1/(c\ell)`, :math:`\chi_\perp \simeq 1 + cK`, :math:`C_W D_s\simeq 1 + 2cK`,
    :math:`C_W^2\langle\sigma'^2\rangle D_s \simeq 1 + 3cK`, :math:`C_W^2\langle\sigma'^2\sigma''\sigma\rangle\simeq cK`, ...) gives:

    * :math:`\lambda_b = 0`: :math:`H\to -\lambda_W\sigma_1^2/c`, :math:`F\to -H/(4c)`, :math:`B\simeq H^2\ell/3`, and
      :math:`Q' - Q \simeq -B/\ell - 3Q/\ell`, so :math:`Q/(nH^2)\to -\tfrac1{12}\,\ell/n`; in :math:`P' - P` the sources cancel,
      :math:`P' \simeq (1-3/\ell)P`, so P grows more slowly than :math:`\ell H^2` (slope 0);
    * :math:`\lambda_b > 0`: :math:`H\simeq\lambda_b\ell/2`, :math:`F\simeq -H/(5c)`, :math:`B\simeq H^2\ell/5`, and
      :math:`P/(nH^2)\simeq Q/(nH^2)\to -\tfrac1{15}\,\ell/n`.

    Both are independent of c and σ1 (universal within the class). Returns dict ``P, Q`` (the slopes).
    """
    _checks.nonnegative("kstar0_dntk_slopes", lambda_b=lambda_b)
    if lambda_b > 0:
        return {"P": -1.0 / 15, "Q": -1.0 / 15}
    return {"P": 0.0, "Q": -1.0 / 12}


# --------------------------------------------------------------------------- ddNTK means at the second layer

def ddntk_second_layer(x, *, C_b, C_W, activation="tanh", lambda_b=1.0, lambda_W=1.0, kink: str = "almost-everywhere") -> dict:
    r"""R, S, T, U of the second layer (exact at any width; ours), for N <= 3 inputs.

    Definitions and Kronecker structures as in :func:`pdlt.ddntk_mean_samples`. At depth two the first layer is
    linear in its parameters and its NTK :math:`\Theta = \Theta^{(1)}` is deterministic and diagonal, so the
    derivatives are :math:`\partial z_i/\partial W_{kj} = \delta_{ik}\sigma_j`,
    :math:`\partial^2 z_i/\partial W_{kj}\partial\theta = \delta_{ik}\sigma'_j\partial z_j`, :math:`\partial^2 z_i/\partial\theta\partial\theta' = \sum_jW_{ij}\sigma''_j\partial z_j\partial z_j`,
    :math:`\partial^3 z_i = \sum_jW_{ij}\sigma'''_j(\partial z_j)^3` or :math:`\delta_{ik}\sigma''_j(\partial z_j)^2`, and the exact Wick
    average over the second-layer weights gives (averages at :math:`K^{(1)}`, :math:`\lambda = \lambda_W^{(2)}`, :math:`C = C_W`):

    .. math::
       R_{0123} &= C^2\langle\sigma'''_0\sigma'_1\sigma'_2\sigma'_3\rangle\Theta_{01}\Theta_{02}\Theta_{03}
                 + \lambda C\langle\sigma''_0\sigma_1\sigma'_2\sigma'_3\rangle\Theta_{02}\Theta_{03},\\
       S_{1234} &= \lambda C\langle\sigma'_1\sigma'_2\sigma'_3\sigma'_4\rangle\Theta_{13}\Theta_{24} + X_{1234},\qquad
       U_{1423} = X_{1234},\\
       T_{1342} &= \lambda^2\langle\sigma'_1\sigma'_2\sigma_3\sigma_4\rangle\Theta_{12}
                 + \lambda C\big[\langle\sigma'_1\sigma''_2\sigma_3\sigma'_4\rangle\Theta_{24} + \langle\sigma''_1\sigma'_2\sigma'_3\sigma_4\rangle\Theta_{13}\big]\Theta_{12} + X_{1234},

    with :math:`X_{1234} = C^2\langle\sigma''_1\sigma''_2\sigma'_3\sigma'_4\rangle\Theta_{12}\Theta_{13}\Theta_{24}` (digits: input indices).

    Kinked activations (scale-invariant, :math:`a_+\ne a_-`), N <= 2 inputs. ``kink="almost-everywhere"``
    (the default): σ'' = σ''' = 0, so R = U = 0 and S, T keep only their σ' terms. ``kink="distributional"``
    (ours): R with :math:`\sigma'' = (a_+-a_-)\delta`, :math:`\sigma''' = (a_+-a_-)\delta'`, the limit of smooth
    activations approaching the kink. With :math:`\langle\delta(z_a)f(z_b)\rangle = p_a(0)E[f\mid z_a=0]`,
    :math:`\langle\delta'(z_a)f(z_b)\rangle = -\partial_u[p_a(u)E[f\mid z_a=u]]_{u=0} = -p_a(0)\,(K_{ab}/K_{aa})\,E[f'(z_b)\mid z_a=0]`
    and :math:`z_b\mid z_a=0\sim N(0, \det K/K_{aa})`, the entries whose first input differs from the other three are

    .. math::
       R_{abbb} = \frac{(a_+-a_-)(a_+^3-a_-^3)}{2\pi K_{aa}}\Big[-C^2\Theta_{ab}^3\frac{K_{ab}}{\sqrt{\det K}}
                 + \lambda C\,\Theta_{ab}^2\sqrt{\det K}\Big]\qquad(a\ne b),

    the first term from :math:`\langle\sigma'''_a\sigma'^3_b\rangle`, the second from :math:`\langle\sigma''_a\sigma_b\sigma'^2_b\rangle`
    (both vanish for :math:`a_+ = a_-`). Every other entry has its first input coinciding with another one and
    contains :math:`\langle\delta'(z_a)\sigma'(z_a)\cdots\rangle`, which has no finite value (for a smooth activation of
    kink width ε it grows like :math:`-p_a(0)\int\sigma''^2\propto 1/\varepsilon`); those entries are NaN. One input, or
    two coincident ones (:math:`\det K = 0`), leave no finite entry and raise. S, T and U stay almost-everywhere
    under ``"distributional"``: U = X is a product of two delta functions, with no finite value for coincident
    inputs, and the single delta terms of T are not included either. Only :math:`R_{abbb}` enters one
    second-order step from one training input (:func:`pdlt.learning.trained_mean_correction`, whose first index
    is the test input).

    Returns: dict ``R, S, T, U`` (arrays ``(N,)*4`` in the index order of the definitions; coefficients of 1/n).

    Raises: PDLTValueError naming ``kink`` for a kinked activation with ``kink="distributional"`` and one input
      or two coincident inputs; PDLTValueError for a kinked activation with N > 2.
    """
    fn = "ddntk_second_layer"
    x, lb, lw = _validate_common(fn, x, 2, C_b, C_W, lambda_b, lambda_W, kink)
    act = get_activation(activation, fn)
    if not (act.smooth or act.scale_invariant):
        raise _checks.PDLTValueError(f"{fn}: `activation` {act.name!r} has no usable derivatives")
    xx = x @ x.T / x.shape[1]
    K = C_b + C_W * xx
    Th = lb[0] + lw[0] * xx
    lam, C = lw[1], float(C_W)
    N = x.shape[0]
    R_dist = None
    if _kinked(act):
        if N > 2:
            raise _checks.PDLTValueError(f"{fn}: kinked activation {act.name!r} supports N <= 2 inputs, got N={N}")
        R_dist = _kinked_R_distributional(fn, act, K, Th, lam, C) if kink == "distributional" else None
        mom = lambda kinds: (_si_moment(act, K, kinds, kink) if not set(kinds) & {"dd", "ddd"}  # noqa: E731
                             else jnp.zeros((N,) * len(kinds), K.dtype))
    else:
        d3 = jax.vmap(jax.grad(lambda z: act.d2sigma(z)))

        def mom(kinds):
            fs = [(lambda z: d3(z.ravel()).reshape(z.shape)) if k == "ddd" else _funcs(act, k) for k in kinds]
            X, W = _grid_np(N, {1: 128, 2: 96, 3: 64}[N])
            z = jnp.asarray(X, K.dtype) @ psd_factor(K).T
            return _einsum_moment([f(z) for f in fs], jnp.asarray(W, K.dtype))

    R = (C**2 * jnp.einsum("wabc,wa,wb,wc->wabc", mom(("ddd", "d", "d", "d")), Th, Th, Th)
         + lam * C * jnp.einsum("wabc,wb,wc->wabc", mom(("dd", "s", "d", "d")), Th, Th))
    X = C**2 * jnp.einsum("abcd,ab,ac,bd->abcd", mom(("dd", "dd", "d", "d")), Th, Th, Th)
    S = lam * C * jnp.einsum("abcd,ac,bd->abcd", mom(("d", "d", "d", "d")), Th, Th) + X
    Tl = (lam**2 * jnp.einsum("abcd,ab->abcd", mom(("d", "d", "s", "s")), Th)
          + lam * C * (jnp.einsum("abcd,bd,ab->abcd", mom(("d", "dd", "s", "d")), Th, Th)
                       + jnp.einsum("abcd,ac,ab->abcd", mom(("dd", "d", "d", "s")), Th, Th)) + X)
    if R_dist is not None:
        R = R_dist
    # T_{1342} = Tl[1,2,3,4] -> T[e0,e1,e2,e3] = Tl[e0,e3,e1,e2];  U_{1423} = X[1,2,3,4] -> U[e0,e1,e2,e3] = X[e0,e2,e3,e1]
    out = {"R": R, "S": S, "T": jnp.transpose(Tl, (0, 2, 3, 1)), "U": jnp.transpose(X, (0, 3, 1, 2))}
    # the NaN entries of a distributional kinked R are intended (no finite value); the finite ones are checked
    _checks.warn_nonfinite(fn, {**out, "R": R[[0, 1], [1, 0], [1, 0], [1, 0]]} if R_dist is not None else out, "recursion")
    return out


def _kinked_R_distributional(fn, act, K, Th, lam, C):
    """R of the second layer with σ'' = (a+ - a-)δ, σ''' = (a+ - a-)δ' (two distinct inputs; see ddntk_second_layer)."""
    N = K.shape[0]
    if N == 1 or not bool(K[0, 0] * K[1, 1] - K[0, 1] ** 2 > 1e-12 * K[0, 0] * K[1, 1]):
        raise _checks.PDLTValueError(
            f"{fn}: kink='distributional' R of the kinked activation {act.name!r} needs two distinct inputs: "
            "with one input (or two coincident ones) every entry contains <δ'(z)σ'(z)>, which has no finite value; "
            "use kink='almost-everywhere'")
    det = K[0, 0] * K[1, 1] - K[0, 1] ** 2
    ap, am = act.a_plus, act.a_minus
    w = (ap - am) * (ap**3 - am**3) / (2 * math.pi)
    R = jnp.full((2, 2, 2, 2), jnp.nan, K.dtype)
    for a in range(2):
        b = 1 - a
        v = w / K[a, a] * (-C**2 * Th[a, b] ** 3 * K[a, b] / jnp.sqrt(det) + lam * C * Th[a, b] ** 2 * jnp.sqrt(det))
        R = R.at[a, b, b, b].set(v)
    return R
