r"""Information in nearly-Gaussian network outputs (PDLT Appendix A; numbering unverified).

For a single input, the output layer of an MLP is *exactly* a Gaussian scale mixture: given the
conditional metric :math:`\hat G \equiv \hat G^{(L)}`, the :math:`n_L` outputs are iid
:math:`\mathcal N(0,\hat G)`. Split the outputs into groups A and B of :math:`n_A` and
:math:`n_B` neurons (:math:`n_L = n_A + n_B` in this module). Their mutual information depends only
on the law of :math:`s = \hat G / E[\hat G] = 1 + \varepsilon`, and for small
:math:`t = \mathrm{Var}(\varepsilon) = V/(nK^2)` (derived with sympy for a general law whose
cumulants scale as :math:`\kappa_k(\varepsilon) = O(t^{k-1})`; the third and fourth cumulants drop
out at this order):

.. math::
   I(A;B) = \frac{n_A n_B}{8}\,t^2 - \frac{n_A n_B\,(3 n_L + 20)}{48}\,t^3 + O(t^4).

With :math:`t \approx \nu r` (:math:`r = L/n`) the truncated series peaks at
:math:`t^\star = 4/(20 + 3 n_L)`, i.e. :math:`r^\star = 4/((20+3n_L)\nu)`.

The exact mutual information of a scale mixture is computed by one-dimensional quadrature: with
:math:`u = |x|^2` and :math:`g_m(u) = E_s[s^{-m/2} e^{u(1-1/s)/2}]` (the mixture density over the
unit Gaussian density in :math:`m` dimensions),
:math:`D_m = \mathrm{KL}(p_m\,\|\,\mathcal N(0, I_m)) = \int p_U(u)\log g_m(u)\,du` and
:math:`I(A;B) = D_{n_A+n_B} - D_{n_A} - D_{n_B}` (the cross-entropy terms are linear in m and
cancel). The integral is a trapezoid rule in :math:`\log u`, spectrally accurate for these smooth,
doubly-exponentially decaying integrands. The law of :math:`s` is any discrete law (a quadrature
rule, or the empirical law of an ensemble's :math:`\hat G`).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp

from . import _checks

__all__ = [
    "gaussian_entropy", "mi_series", "mi_series_coefficients", "optimal_t", "optimal_aspect_ratio",
    "lognormal_scale_law", "two_point_scale_law", "relu_scale_law", "scale_mixture_kl",
    "scale_mixture_entropy", "scale_mixture_mi", "ensemble_mi", "relu_output_t",
    "mi_coefficients_by_extrapolation", "mixture_kl_series",
]

H_STEP = 0.1  # trapezoid step in log u (error ~ exp(-pi^2 / h), far below rounding)


def gaussian_entropy(K, m: int = 1):
    r"""Differential entropy of :math:`\mathcal N(0, K I_m)`: :math:`\tfrac m2\log(2\pi e K)` (nats)."""
    _checks.positive("gaussian_entropy", K=K)
    _checks.positive_int("gaussian_entropy", m=m)
    return 0.5 * m * jnp.log(2 * jnp.pi * jnp.e * jnp.asarray(K, dtype=jnp.result_type(float)))


def mi_series_coefficients(n_A: int, n_B: int):
    r"""Coefficients :math:`(c_2, c_3)` of :math:`I = c_2 t^2 + c_3 t^3`: :math:`n_An_B/8` and
    :math:`-n_An_B(3(n_A+n_B)+20)/48` (Appendix A, derived here; see module docstring)."""
    _checks.positive_int("mi_series_coefficients", n_A=n_A, n_B=n_B)
    nL = n_A + n_B
    return n_A * n_B / 8.0, -n_A * n_B * (3 * nL + 20) / 48.0


def mi_series(t, n_A: int = 1, n_B: int = 1, order: int = 3):
    r"""The mutual-information series in :math:`t = V/(nK^2)`, truncated at ``order`` (2 or 3).

    Args:
      t: scalar or array, t >= 0. n_A, n_B: group sizes. order: 2 (leading) or 3.
    Returns:
      array of t's shape (nats).
    """
    _checks.nonnegative("mi_series", t=t)
    _checks.one_of("mi_series", "order", order, (2, 3))
    c2, c3 = mi_series_coefficients(n_A, n_B)
    t = jnp.asarray(t, dtype=jnp.result_type(float))
    return c2 * t**2 + (c3 * t**3 if order == 3 else 0.0)


def optimal_t(n_L: int):
    r""":math:`t^\star = 4/(20 + 3 n_L)`, the maximum of the order-3 series (``n_L = n_A + n_B``)."""
    _checks.positive_int("optimal_t", n_L=n_L)
    return 4.0 / (20.0 + 3.0 * n_L)


def optimal_aspect_ratio(nu, n_L: int):
    r"""Optimal aspect ratio :math:`r^\star = 4/((20+3n_L)\nu)` for :math:`t = \nu r` (Appendix A.3).

    Args:
      nu: the class's slope of :math:`V/(nK^2)` in ``r`` (ReLU 5, K*=0 class 2/3), > 0.
      n_L: number of output neurons split into the two groups.
    """
    _checks.positive("optimal_aspect_ratio", nu=nu)
    return optimal_t(n_L) / nu


def relu_output_t(n: int, L: int):
    r"""Exact :math:`t = \mathrm{Var}(\hat G^{(L)})/E[\hat G^{(L)}]^2 = (1+5/n)^{L-1} - 1` for a critical
    ReLU MLP of hidden width n (PDLT §5.4, the scale-invariant V; numbering unverified).

    A private stand-in for the vertex module's exact ReLU result (``V = n[(1+5/n)^{L-1}-1]K^2``).
    """
    _checks.positive("relu_output_t", n=n)
    _checks.positive_int("relu_output_t", L=L)
    return (1.0 + 5.0 / n) ** (L - 1) - 1.0


# ---------------------------------------------------------------- laws of s = Ghat / E[Ghat]

def lognormal_scale_law(t: float, deg: int = 80):
    r"""Gauss-Hermite rule for :math:`s = e^{\sigma g - \sigma^2/2}`, :math:`E s = 1`,
    :math:`\mathrm{Var}\,s = t` (:math:`\sigma^2 = \log(1+t)`).

    Returns:
      ``(log_s, log_w)``, two arrays of shape ``(deg,)``.
    """
    _checks.positive("lognormal_scale_law", t=t)
    _checks.positive_int("lognormal_scale_law", deg=deg)
    x, w = np.polynomial.hermite_e.hermegauss(deg)
    sig = np.sqrt(np.log1p(t))
    return jnp.asarray(sig * x - sig**2 / 2), jnp.asarray(np.log(w / w.sum()))


def two_point_scale_law(t: float):
    r"""The law :math:`s = 1 \pm \sqrt t` with equal weights (zero third cumulant), ``t < 1``."""
    _checks.positive("two_point_scale_law", t=t)
    if t >= 1:
        raise _checks.PDLTValueError(f"two_point_scale_law: `t` must be < 1, got {t}")
    a = np.sqrt(t)
    return jnp.asarray(np.log([1 - a, 1 + a])), jnp.asarray(np.log([0.5, 0.5]))


def relu_scale_law(n: int, L: int, points: int = 4097):
    r"""Exact law of :math:`s = \hat G^{(L)}/K` for a critical ReLU MLP of hidden width ``n``.

    Each layer multiplies :math:`\hat G` by :math:`Y = (2/n)\chi^2_B`, :math:`B\sim\mathrm{Bin}(n,1/2)`
    (the active neurons), independently; so :math:`\log s` is a sum of ``L-1`` iid copies of
    :math:`\log Y`, whose density is known in closed form. The convolution is done on a grid.
    The event B = 0 (all neurons off, probability :math:`2^{-n}` per layer) is dropped; use n >= 32.
    Checks: :math:`E s = 1`, :math:`E s^2 = (1+5/n)^{L-1}`.

    Returns:
      ``(log_s, log_w)`` on a grid of ``points`` nodes (made odd; negligible nodes have weight -inf).
    """
    from scipy.signal import fftconvolve
    from scipy.special import gammaln as sgammaln, logsumexp as slse
    from scipy.stats import binom

    _checks.positive_int("relu_scale_law", n=n, L=L, points=points)
    points = points | 1                          # odd: the grid is symmetric about 0
    if L == 1:
        return jnp.zeros(1), jnp.zeros(1)
    sd = np.sqrt(np.log1p(5.0 / n))
    half = 14 * sd * np.sqrt(L - 1) + 0.5
    x = np.linspace(-half, half, points)
    h = x[1] - x[0]
    B = np.arange(1, n + 1)
    lb = binom.logpmf(B, n, 0.5)[:, None]
    w = x[None, :] - np.log(2.0 / n)            # log chi^2 variable
    logpdf = lb + (B[:, None] / 2) * w - np.exp(w) / 2 - (B[:, None] / 2) * np.log(2) - sgammaln(B[:, None] / 2)
    pY = np.exp(slse(logpdf, axis=0))
    pY /= pY.sum() * h
    p = pY.copy()
    for _ in range(L - 2):
        full = fftconvolve(p, pY) * h           # grid of 2*points-1 nodes centred at 0
        p = np.clip(full[(points - 1) // 2: (points - 1) // 2 + points], 0.0, None)
    w8 = p * h
    w8 /= w8.sum()
    w8[w8 < 1e-18 * w8.max()] = 0.0             # negligible nodes (dropped by the quadrature)
    with np.errstate(divide="ignore"):
        return jnp.asarray(x), jnp.asarray(np.log(w8))


# ---------------------------------------------------------------- exact quadrature

def _grid(log_s_min, log_s_max, m, h=H_STEP):
    lo = log_s_min - 70.0 / m                   # the integrand ~ u^{m/2}: e^{-35} below its peak
    hi = log_s_max + np.log(m + 150.0 + 30.0 * np.sqrt(m))
    size = -(-int(np.ceil((hi - lo) / h)) // 256) * 256   # bucketed length: fewer recompilations
    return lo + h * jnp.arange(size)


@partial(jax.jit, static_argnames=("m",))
def _group_logsums(log_s, log_w, y, m):
    """Per group of samples (rows): log of sum w s^{-m/2} e^{u(1-1/s)/2}, and of sum w c p(c), c = u/s.

    log_s, log_w: (G, M). y = log u: (Y,). Returns two arrays (G, Y).
    """
    u = jnp.exp(y)

    def one(ls_lw):
        ls, lw = ls_lw
        s = jnp.exp(ls)[:, None]
        A = logsumexp(lw[:, None] - 0.5 * m * ls[:, None] + 0.5 * u[None] * (1 - 1 / s), axis=0)
        lc = y[None] - ls[:, None]
        Bl = logsumexp(lw[:, None] + 0.5 * m * (lc - jnp.log(2.0)) - 0.5 * jnp.exp(lc) - gammaln(0.5 * m), axis=0)
        return A, Bl

    return jax.lax.map(one, (log_s, log_w))


def _kl_from_logsums(A, Bl, h):
    """KL from the (already normalised) log-sums on the grid: h * sum p_U u log g."""
    return h * jnp.sum(jnp.exp(Bl) * A)


def _as_law(fn, log_s, log_w):
    log_s = jnp.asarray(log_s, dtype=jnp.result_type(float))
    if log_s.ndim != 1 or log_s.size == 0:
        raise _checks.PDLTValueError(f"{fn}: `log_s` must be a non-empty 1-D array, got shape {log_s.shape}")
    log_w = jnp.full_like(log_s, -np.log(log_s.size)) if log_w is None else jnp.asarray(log_w, log_s.dtype)
    if log_w.shape != log_s.shape:
        raise _checks.PDLTValueError(f"{fn}: `log_w` must have the shape of `log_s` {log_s.shape}, got {log_w.shape}")
    log_w = log_w - logsumexp(log_w)
    # normalise to E[s] = 1 (the KL of the scale mixture is then from N(0, E[s] I))
    log_s = log_s - logsumexp(log_w + log_s)
    return log_s, log_w


def scale_mixture_kl(log_s, log_w=None, m: int = 1, h: float = H_STEP):
    r"""KL divergence (nats) of the m-dimensional scale mixture :math:`E_s\,\mathcal N(0, sI_m)` from the
    Gaussian with the same covariance.

    Args:
      log_s, log_w: the law of s as nodes and log-weights, shape ``(M,)`` (``log_w=None``: equal
      weights, an empirical law); s is rescaled to mean 1. m: dimension. h: step in log u.
    Returns:
      scalar.
    """
    _checks.positive_int("scale_mixture_kl", m=m)
    _checks.positive("scale_mixture_kl", h=h)
    log_s, log_w = _as_law("scale_mixture_kl", log_s, log_w)
    fin = np.asarray(log_w) > -np.inf
    y = _grid(float(np.min(np.asarray(log_s)[fin])), float(np.max(np.asarray(log_s)[fin])), m, h)
    keep = np.flatnonzero(fin)
    size = -(-keep.size // 256) * 256                 # bucketed length: fewer recompilations
    ls = np.zeros(size)
    lw = np.full(size, -np.inf)
    ls[: keep.size], lw[: keep.size] = np.asarray(log_s)[keep], np.asarray(log_w)[keep]
    A, Bl = _group_logsums(jnp.asarray(ls)[None], jnp.asarray(lw)[None], y, m)
    return _kl_from_logsums(A[0], Bl[0], h)


def scale_mixture_entropy(log_s, log_w=None, m: int = 1, K: float = 1.0):
    r"""Differential entropy of :math:`E_s\,\mathcal N(0, K s I_m)` with :math:`E s = 1`:
    the Gaussian entropy minus the KL divergence."""
    return gaussian_entropy(K, m) - scale_mixture_kl(log_s, log_w, m)


def scale_mixture_mi(log_s, log_w=None, n_A: int = 1, n_B: int = 1, h: float = H_STEP):
    r"""Exact mutual information (nats) between two groups of ``n_A`` and ``n_B`` coordinates of the
    scale mixture: :math:`I = D_{n_A+n_B} - D_{n_A} - D_{n_B}` by quadrature."""
    _checks.positive_int("scale_mixture_mi", n_A=n_A, n_B=n_B)
    kl = {m: scale_mixture_kl(log_s, log_w, m, h) for m in {n_A, n_B, n_A + n_B}}
    return kl[n_A + n_B] - kl[n_A] - kl[n_B]


def mixture_kl_series(t, m: int = 1, order: int = 3):
    r"""KL divergence of the m-dimensional scale mixture from the Gaussian with the same covariance:
    :math:`D_m = \frac{m(m+2)}{16}t^2 - \frac{m(m+2)(m+8)}{48}t^3 + O(t^4)` (the entropy deficit;
    derived with sympy like :func:`mi_series`)."""
    _checks.nonnegative("mixture_kl_series", t=t)
    _checks.positive_int("mixture_kl_series", m=m)
    _checks.one_of("mixture_kl_series", "order", order, (2, 3))
    t = jnp.asarray(t, dtype=jnp.result_type(float))
    out = m * (m + 2) / 16.0 * t**2
    return out - (m * (m + 2) * (m + 8) / 48.0 * t**3 if order == 3 else 0.0)


def mi_coefficients_by_extrapolation(law, ts, n_A: int = 1, n_B: int = 1):
    r"""Read the series coefficients off the exact quadrature MI: fit :math:`I(t)/t^2 = c_2 + c_3 t + c_4 t^2`
    at small ``ts`` (least squares) for the law ``law(t) -> (log_s, log_w)``.

    Returns:
      ``(c2, c3)`` (floats), to compare with :func:`mi_series_coefficients`.
    """
    ts = np.asarray(ts, dtype=float)
    if ts.ndim != 1 or ts.size < 3 or np.any(ts <= 0):
        raise _checks.PDLTValueError("mi_coefficients_by_extrapolation: `ts` must be >= 3 positive values")
    I = np.array([float(scale_mixture_mi(*law(float(t)), n_A=n_A, n_B=n_B)) for t in ts])
    c4, c3, c2 = np.polyfit(ts, I / ts**2, 2)
    return float(c2), float(c3)


def ensemble_mi(Ghat, n_A: int = 1, n_B: int = 1, n_groups: int = 20, h: float = H_STEP):
    r"""Mutual information between output groups of an ensemble, from its conditional metrics.

    Uses the exact conditional law :math:`z^{(L)}\,|\,\hat G \sim \mathcal N(0, \hat G I)`: the
    quadrature MI of the empirical law of :math:`\hat G` (a Rao-Blackwellised estimate: no sampling
    of the outputs), with a delete-a-group jackknife over ``n_groups`` groups for the bias
    correction and the standard error.

    Args:
      Ghat: ``(S,)`` per-network output metrics :math:`\hat G^{(L)}` (positive).
      n_A, n_B: group sizes. n_groups: jackknife groups (>= 2, <= S).
    Returns:
      ``(I, se)`` in nats (jackknife bias-corrected estimate and its standard error).
    Raises:
      PDLTValueError for non-positive metrics or bad sizes.
    """
    fn = "ensemble_mi"
    _checks.positive_int(fn, n_A=n_A, n_B=n_B, n_groups=n_groups)
    G = np.asarray(Ghat, dtype=float).ravel()
    if n_groups < 2 or n_groups > G.size:
        raise _checks.PDLTValueError(f"{fn}: `n_groups` must be in [2, {G.size}], got {n_groups}")
    if not np.all(G > 0):
        raise _checks.PDLTValueError(f"{fn}: every `Ghat` must be > 0 (a dead network has Ghat = 0)")
    S = G.size
    M = -(-S // n_groups)
    ls = np.full(n_groups * M, 0.0)
    lw = np.full(n_groups * M, -np.inf)
    ls[:S] = np.log(G / G.mean())
    lw[:S] = 0.0
    ls, lw = jnp.asarray(ls.reshape(n_groups, M)), jnp.asarray(lw.reshape(n_groups, M))
    counts = np.bincount(np.arange(S) // M, minlength=n_groups).astype(float)
    lo, hi = float(np.min(np.log(G / G.mean()))), float(np.max(np.log(G / G.mean())))
    mask = 1 - jnp.eye(n_groups)                       # row j: every group but j
    full, loo = 0.0, jnp.zeros(n_groups)
    for m, sign in _mi_terms(n_A, n_B):
        y = _grid(lo, hi, m, h)
        A, Bl = _group_logsums(ls, lw, y, m)           # (G, Y)
        # all groups
        At, Bt = logsumexp(A, axis=0) - np.log(S), logsumexp(Bl, axis=0) - np.log(S)
        full = full + sign * _kl_from_logsums(At, Bt, h)
        # leave one group out: log-sum over the other groups (no cancellation)
        nrest = S - counts
        Aj = logsumexp(A[None] + jnp.log(mask)[:, :, None], axis=1) - jnp.log(nrest)[:, None]
        Bj = logsumexp(Bl[None] + jnp.log(mask)[:, :, None], axis=1) - jnp.log(nrest)[:, None]
        loo = loo + sign * h * jnp.sum(jnp.exp(Bj) * Aj, axis=1)
    g = n_groups
    est = g * full - (g - 1) * jnp.mean(loo)
    se = jnp.sqrt((g - 1) / g * jnp.sum((loo - jnp.mean(loo)) ** 2))
    return est, se


def _mi_terms(n_A, n_B):
    """(dimension, sign) pairs of I = D_{A+B} - D_A - D_B."""
    return [(n_A + n_B, 1.0), (n_A, -1.0), (n_B, -1.0)]
