r"""Gaussian expectations :math:`\langle F(z)\rangle_K` (PDLT §1.1-§1.3).

* :func:`gaussian_expectation` -- one variable, :math:`z\sim\mathcal N(0,K)`, by Gauss-Hermite
  quadrature (probabilists' nodes). An even number of nodes puts no node at the origin, so
  integrands with a kink at ``z = 0`` (ReLU, step) are split symmetrically.
* :func:`gaussian_expectation2` -- two correlated variables with a 2x2 covariance.
* :func:`wick_expectation` -- exact moments of a centred multivariate Gaussian by summing over
  pairings (Wick's theorem, PDLT eq. (1.45), unverified numbering).
* :func:`kernel_map` / :func:`derivative_kernel_map` -- the N x N matrices
  :math:`\langle\sigma(z_a)\sigma(z_b)\rangle_K` and :math:`\langle\sigma'(z_a)\sigma'(z_b)\rangle_K`
  that drive the kernel and NTK recursions, with the arc-cosine closed forms for the
  scale-invariant family and tensor-product quadrature otherwise.

All functions are pure and ``jit``/``vmap``-compatible in their array arguments.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._activations import Activation, get_activation

__all__ = [
    "std_normal_nodes",
    "gaussian_expectation",
    "gaussian_expectation2",
    "wick_expectation",
    "kernel_map",
    "derivative_kernel_map",
    "scale_invariant_kernel",
    "scale_invariant_derivative_kernel",
    "psd_factor",
    "gaussian_expectation_n",
    "gaussian_expectation_dK",
    "scale_invariant_expectation2",
    "gaussian_moment_tensor",
]

DEG1 = 128  # default nodes, one variable
DEG2 = 64   # default nodes per axis, two variables


@functools.lru_cache(maxsize=None)
def _nodes_np(deg: int):
    x, w = np.polynomial.hermite_e.hermegauss(deg)
    return x, w / np.sqrt(2.0 * np.pi)


def std_normal_nodes(deg: int = DEG1, dtype=None):
    """Nodes ``x`` and weights ``w`` with ``E[f(Z)] ~= sum(w * f(x))`` for ``Z ~ N(0, 1)``.

    Args:
      deg: number of nodes (even numbers avoid a node at 0), at most 200 (beyond that the
      weights underflow). dtype: result dtype (default: JAX's default float).
    Returns:
      two arrays of shape ``(deg,)``.
    """
    _checks.positive_int("std_normal_nodes", deg=deg)
    if deg > 200:
        raise _checks.PDLTValueError(f"std_normal_nodes: `deg` must be <= 200, got {deg}")
    x, w = _nodes_np(deg)
    dtype = dtype or jnp.asarray(1.0).dtype
    return jnp.asarray(x, dtype), jnp.asarray(w, dtype)


RULES = ("hermite", "dense")


@functools.lru_cache(maxsize=None)
def _dense_nodes(panels: int = 56, per: int = 24, half: float = 14.0):
    """Composite Gauss-Legendre on [-half, half] (``panels`` panels of ``per`` nodes), Gaussian-weighted."""
    x, w = np.polynomial.legendre.leggauss(per)
    edges = np.linspace(-half, half, panels + 1)
    a, b = edges[:-1, None], edges[1:, None]
    X = (0.5 * (b - a) * x + 0.5 * (a + b)).ravel()
    W = (0.5 * (b - a) * w).ravel() * np.exp(-0.5 * X**2) / np.sqrt(2 * np.pi)
    return X, W


def gaussian_expectation(f, K, *, deg: int = DEG1, rule: str = "hermite"):
    r"""One-variable Gaussian expectation :math:`\langle f(z)\rangle_K = E[f(z)],\ z\sim\mathcal N(0,K)`.

    Args:
      f: elementwise function of one array argument.
      K: variance, scalar or array (broadcasts; the result has K's shape). ``K >= 0``.
      deg: Gauss-Hermite nodes (``rule="hermite"``).
      rule: ``"hermite"`` (default): ``deg``-node Gauss-Hermite. ``"dense"``: composite Gauss-Legendre
        on :math:`[-14\sqrt K, 14\sqrt K]` (56 panels of 24 nodes), accurate to ~1e-14 for smooth f of
        moderate growth at any K, where a fixed-order Gauss-Hermite rule loses digits at large K for
        functions that are not polynomial-like (the criticality root finding uses it).
    Returns:
      array of K's shape and dtype.
    """
    _checks.one_of("gaussian_expectation", "rule", rule, RULES)
    if rule == "dense":
        X, W = _dense_nodes()
        K = jnp.asarray(K, dtype=jnp.result_type(float))
        z = jnp.sqrt(K)[..., None] * jnp.asarray(X, K.dtype)
        return jnp.sum(jnp.asarray(W, K.dtype) * f(z), axis=-1)
    K = jnp.asarray(K)
    _checks.nonnegative("gaussian_expectation", K=K)
    x, w = std_normal_nodes(deg, K.dtype if jnp.issubdtype(K.dtype, jnp.floating) else None)
    z = jnp.sqrt(K)[..., None] * x
    return jnp.sum(w * f(z), axis=-1)


def gaussian_expectation2(f, K, *, deg: int = DEG2):
    r"""Two-variable expectation :math:`E[f(z_1, z_2)]` for :math:`(z_1,z_2)\sim\mathcal N(0,K)`.

    Args:
      f: function of two arrays (elementwise).
      K: covariance of shape ``(..., 2, 2)``, positive semi-definite.
      deg: nodes per axis (the grid has deg**2 points).
    Returns:
      array of shape ``K.shape[:-2]``.
    """
    if not _checks._is_traced(K) and jnp.shape(K)[-2:] == (2, 2):
        _checks.kernel("gaussian_expectation2", "K", K)
    K = jnp.asarray(K)
    if K.shape[-2:] != (2, 2):
        raise _checks.PDLTValueError(f"gaussian_expectation2: `K` must have shape (..., 2, 2), got {K.shape}")
    x, w = std_normal_nodes(deg, K.dtype)
    z1, z2 = _pair_grid(K[..., 0, 0], K[..., 0, 1], K[..., 1, 1], x)
    W = w[:, None] * w[None, :]
    return jnp.sum(W * f(z1, z2), axis=(-2, -1))


def _pair_grid(K11, K12, K22, x):
    """Points (z1, z2) of the tensor grid for covariance [[K11, K12], [K12, K22]]; shape (..., deg, deg)."""
    s1 = jnp.sqrt(K11)
    safe = jnp.where(s1 > 0, s1, 1.0)
    c = jnp.where(s1 > 0, K12 / safe, 0.0)
    r = jnp.sqrt(jnp.clip(K22 - c * c, 0.0))
    s1, c, r = s1[..., None, None], c[..., None, None], r[..., None, None]
    z1 = s1 * x[:, None]
    z2 = c * x[:, None] + r * x[None, :]
    return z1 * jnp.ones_like(z2), z2


def wick_expectation(K, indices) -> float:
    r"""Exact :math:`E[z_{i_1}\cdots z_{i_{m}}]` for :math:`z\sim\mathcal N(0,K)` by Wick's theorem.

    Sums the product of covariances over all perfect pairings of the indices (zero for odd m).
    Pure Python over pairings ((m-1)!! terms): meant for small m.

    Args:
      K: covariance matrix (array-like, n x n). indices: sequence of integers in [0, n).
    Returns:
      float.
    """
    K = np.asarray(K, dtype=float)
    idx = list(indices)
    if len(idx) % 2:
        return 0.0

    def pairings(items):
        if not items:
            yield []
            return
        a = items[0]
        for k in range(1, len(items)):
            rest = items[1:k] + items[k + 1:]
            for p in pairings(rest):
                yield [(a, items[k])] + p

    return float(sum(np.prod([K[i, j] for i, j in p]) for p in pairings(idx)))


# --------------------------------------------------------------------------- kernel maps

def _rho_and_scale(K):
    d = jnp.sqrt(jnp.clip(jnp.diagonal(K, axis1=-2, axis2=-1), 0.0))
    s = d[..., :, None] * d[..., None, :]
    rho = jnp.clip(K / jnp.where(s > 0, s, 1.0), -1.0, 1.0)
    return rho, s


def _offdiag_safe_rho(K):
    """rho with the diagonal replaced by 0 (so gradients of arcsin/sqrt stay finite there)."""
    rho, s = _rho_and_scale(K)
    eye = jnp.eye(K.shape[-1], dtype=bool)
    return jnp.where(eye, 0.0, rho), s, eye


def scale_invariant_kernel(K, a_plus: float, a_minus: float):
    r"""Closed form of :math:`\langle\sigma(z_a)\sigma(z_b)\rangle_K` for
    :math:`\sigma = a_+ z\Theta(z) + a_- z\Theta(-z)` (the arc-cosine kernel; ReLU: PDLT §5.5).

    With :math:`\rho = K_{ab}/\sqrt{K_{aa}K_{bb}}`, :math:`s = (a_+ + a_-)/2`, :math:`d = (a_+ - a_-)/2`:
    :math:`\sqrt{K_{aa}K_{bb}}\,[s^2\rho + d^2 \tfrac{2}{\pi}(\sqrt{1-\rho^2} + \rho\arcsin\rho)]`.

    Args:
      K: kernel matrix ``(..., N, N)``. Returns: array of the same shape.
    """
    rho, s, eye = _offdiag_safe_rho(K)
    sp, dm = 0.5 * (a_plus + a_minus), 0.5 * (a_plus - a_minus)
    absabs = (2.0 / jnp.pi) * (jnp.sqrt(jnp.clip(1.0 - rho * rho, 0.0)) + rho * jnp.arcsin(rho))
    A2 = 0.5 * (a_plus**2 + a_minus**2)  # diagonal: <sigma^2>_K = A2 K exactly (no rho at the kink)
    return jnp.where(eye, A2 * K, s * (sp * sp * rho + dm * dm * absabs))


def scale_invariant_derivative_kernel(K, a_plus: float, a_minus: float):
    r"""Closed form of :math:`\langle\sigma'(z_a)\sigma'(z_b)\rangle_K` for the scale-invariant family:
    :math:`s^2 + d^2\,\tfrac{2}{\pi}\arcsin\rho` (independent of the overall scale of K)."""
    rho, _, eye = _offdiag_safe_rho(K)
    sp, dm = 0.5 * (a_plus + a_minus), 0.5 * (a_plus - a_minus)
    A2 = 0.5 * (a_plus**2 + a_minus**2)
    return jnp.where(eye, A2, sp * sp + dm * dm * (2.0 / jnp.pi) * jnp.arcsin(rho))


def _quadrature_pair_map(g, K, deg):
    x, w = std_normal_nodes(deg, K.dtype)
    W = w[:, None] * w[None, :]
    Kd = jnp.diagonal(K, axis1=-2, axis2=-1)
    K11 = Kd[..., :, None] * jnp.ones_like(K)
    K22 = Kd[..., None, :] * jnp.ones_like(K)
    z1, z2 = _pair_grid(K11, K, K22, x)
    return jnp.sum(W * g(z1) * g(z2), axis=(-2, -1))


def kernel_map(activation, K, *, deg: int = DEG2):
    r"""The matrix :math:`\langle\sigma(z_a)\sigma(z_b)\rangle_K` for a kernel ``K`` of shape ``(..., N, N)``.

    Closed form for the scale-invariant family, tensor-product Gauss-Hermite otherwise.
    The diagonal is computed with the one-variable rule (``2*deg`` nodes) for accuracy.
    """
    act: Activation = get_activation(activation, "kernel_map")
    return _pair_map(act, jnp.asarray(K), act.sigma, act.kernel, scale_invariant_kernel, deg)


def derivative_kernel_map(activation, K, *, deg: int = DEG2):
    r"""The matrix :math:`\langle\sigma'(z_a)\sigma'(z_b)\rangle_K` (drives the NTK recursion, PDLT §8)."""
    act: Activation = get_activation(activation, "derivative_kernel_map")
    return _pair_map(act, jnp.asarray(K), act.dsigma, act.dkernel, scale_invariant_derivative_kernel, deg)


def _pair_map(act, K, g, closed, scale_invariant_closed, deg):
    """<g(z_a) g(z_b)>_K: the scale-invariant closed form, the activation's own closed form, or quadrature."""
    if act.scale_invariant:
        return scale_invariant_closed(K, act.a_plus, act.a_minus)
    if closed is not None:
        return _closed_pair_map(closed, K)
    out = _quadrature_pair_map(g, K, deg)
    diag = gaussian_expectation(lambda z: g(z) ** 2, jnp.diagonal(K, axis1=-2, axis2=-1), deg=2 * deg)
    return _set_diag(out, diag)


def _set_diag(M, d):
    N = M.shape[-1]
    eye = jnp.eye(N, dtype=bool)
    return jnp.where(eye, d[..., :, None] * jnp.ones_like(M), M)


def _closed_pair_map(fn, K):
    Kd = jnp.diagonal(K, axis1=-2, axis2=-1)
    return fn(Kd[..., :, None], K, Kd[..., None, :])


# --------------------------------------------------------------------------- several variables

def psd_factor(K, *, jitter: float | None = None):
    r"""A factor ``R`` with :math:`R R^\top = K` for a positive semi-definite ``K`` of shape ``(..., N, N)``.

    Cholesky of :math:`K + \epsilon I` with :math:`\epsilon` = ``jitter`` (default 1e-12 in float64,
    1e-6 in float32) times ``tr K / N``, so that a singular kernel (coincident inputs) still factors.
    A kernel that is exactly 0 (every ReLU of a layer off) gives R = 0. Lower triangular: the first
    variable is ``R[0,0] x_0``, so a kink of an activation at ``z_0 = 0`` lies on a grid axis.
    The one PSD factor of the library (the conditional samplers and the quadratures use it).
    """
    K = jnp.asarray(K)
    N = K.shape[-1]
    if jitter is None:
        jitter = 1e-12 if K.dtype == jnp.float64 else 1e-6
    scale = jnp.maximum(jnp.trace(K, axis1=-2, axis2=-1) / N, jnp.finfo(K.dtype).tiny)[..., None, None]
    R = jnp.linalg.cholesky(K + jitter * scale * jnp.eye(N, dtype=K.dtype))
    return jnp.where(jnp.isfinite(R), R, 0.0)  # K = 0 (e.g. every ReLU of a layer off): R = 0


@functools.lru_cache(maxsize=None)
def _grid_np(N: int, deg: int):
    x, w = _nodes_np(deg)
    X = np.stack(np.meshgrid(*([x] * N), indexing="ij"), axis=-1).reshape(-1, N)
    W = np.prod(np.stack(np.meshgrid(*([w] * N), indexing="ij"), axis=-1).reshape(-1, N), axis=-1)
    return X, W


def gaussian_expectation_n(f, K, *, deg: int | None = None):
    r"""Expectation :math:`E[f(z)]` for a correlated Gaussian vector :math:`z\sim\mathcal N(0,K)`, :math:`z\in\mathbb R^N`.

    Tensor-product Gauss-Hermite quadrature in the whitened variables :math:`z = R x` (``R`` from
    :func:`psd_factor`). Spectrally accurate for smooth ``f``; for kinked activations use the closed
    forms (:func:`scale_invariant_expectation2`) instead.

    Args:
      f: function mapping points ``z`` of shape ``(P, N)`` to values of shape ``(P, ...)`` (any trailing
        shape: e.g. a whole tensor of products at once).
      K: covariance ``(N, N)`` (N <= 4), positive semi-definite.
      deg: nodes per axis (default 128, 96, 48, 20 for N = 1..4; 96 per axis reaches ~1e-12 for
        products of four erf or tanh in two variables).
    Returns:
      array of shape ``(...)`` (the trailing shape of ``f``).
    Raises:
      PDLTValueError: K not square or N > 4.
    """
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise _checks.PDLTValueError(f"gaussian_expectation_n: `K` must be an (N, N) matrix, got shape {K.shape}")
    N = K.shape[0]
    if N > 4:
        raise _checks.PDLTValueError(f"gaussian_expectation_n: `K` must have N <= 4 variables, got N={N}")
    deg = deg or {1: 128, 2: 96, 3: 48, 4: 20}[N]
    X, W = _grid_np(N, deg)
    z = jnp.asarray(X, K.dtype) @ psd_factor(K).T
    vals = f(z)
    return jnp.tensordot(jnp.asarray(W, K.dtype), vals, axes=(0, 0))


def _hermite_e(m: int, x):
    """Probabilists' Hermite polynomial He_m(x) by the three-term recursion."""
    h0, h1 = jnp.ones_like(x), x
    if m == 0:
        return h0
    for k in range(1, m):
        h0, h1 = h1, x * h1 - k * h0
    return h1


def gaussian_expectation_dK(f, K, order: int = 1, *, deg: int = DEG1):
    r"""K-derivatives of a one-variable Gaussian expectation (Stein / heat-equation identity, PDLT §5.1).

    .. math:: \frac{d^m}{dK^m}\langle f\rangle_K = \frac{1}{2^m}\langle f^{(2m)}\rangle_K
              = \frac{1}{(2K)^m}\big\langle f(z)\,\mathrm{He}_{2m}(z/\sqrt K)\big\rangle_K .

    The second form needs no derivative of ``f`` (valid for ReLU, step, ...). ``m = 1`` gives
    :math:`\langle f\,(z^2-K)\rangle_K/(2K^2)`, the form in the susceptibility :math:`\chi_\parallel`.

    Args:
      f: elementwise function. K: variance(s) > 0 (any shape). order: m >= 0. deg: nodes.
    Returns:
      array of K's shape.
    Raises:
      PDLTValueError: K <= 0 or order < 0.
    """
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    _checks.positive("gaussian_expectation_dK", K=K)
    if not isinstance(order, int) or order < 0:
        raise _checks.PDLTValueError(f"gaussian_expectation_dK: `order` must be an integer >= 0, got {order!r}")
    x, w = std_normal_nodes(deg, K.dtype)
    z = jnp.sqrt(K)[..., None] * x
    return jnp.sum(w * f(z) * _hermite_e(2 * order, x), axis=-1) / (2.0 * K) ** order


@functools.lru_cache(maxsize=None)
def _legendre_np(deg: int):
    return np.polynomial.legendre.leggauss(deg)


def scale_invariant_expectation2(f, K, degree: int, *, deg: int = 48):
    r"""Exact :math:`E[f(z_1,z_2)]`, :math:`z\sim\mathcal N(0,K)`, for ``f`` positively homogeneous of
    degree ``degree`` and smooth away from the axes :math:`z_1 = 0`, :math:`z_2 = 0` (products of
    scale-invariant activations and powers of z).

    In polar coordinates of the whitened variables, :math:`z = R\,r\,(\cos\theta,\sin\theta)`:
    :math:`E[f] = E[r^k]\,\frac{1}{2\pi}\oint f(R\,u(\theta))\,d\theta`, :math:`E[r^k] = 2^{k/2}\Gamma(1+k/2)`.
    The angular integral is split at the four kink angles and done by Gauss-Legendre on each arc
    (machine precision; quadrature in z would be only algebraically accurate at the kinks).

    Args:
      f: function of points ``z`` of shape ``(P, 2)`` returning ``(P, ...)``.
      K: covariance ``(2, 2)``. degree: the homogeneity degree k of f. deg: nodes per arc.
    Returns:
      array of f's trailing shape.
    """
    from jax.scipy.special import gammaln

    K = jnp.asarray(K, dtype=jnp.result_type(float))
    R = psd_factor(K)
    # kink angles: R[a] . (cos t, sin t) = 0  ->  t = atan2(-R[a,0], R[a,1]) (+ pi)
    t0 = jnp.arctan2(-R[:, 0], R[:, 1])
    cuts = jnp.sort(jnp.mod(jnp.concatenate([t0, t0 + jnp.pi]), 2 * jnp.pi))
    edges = jnp.concatenate([jnp.zeros(1, K.dtype), cuts, jnp.full(1, 2 * jnp.pi, K.dtype)])
    a, b = edges[:-1], edges[1:]
    x, w = (jnp.asarray(v, K.dtype) for v in _legendre_np(deg))
    theta = (0.5 * (b - a)[:, None] * x + 0.5 * (a + b)[:, None]).ravel()
    wt = (0.5 * (b - a)[:, None] * w).ravel()
    u = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=-1)
    vals = f(u @ R.T)
    Er = jnp.exp(0.5 * degree * jnp.log(2.0) + gammaln(1.0 + 0.5 * degree))
    return Er * jnp.tensordot(wt, vals, axes=(0, 0)) / (2 * jnp.pi)


def gaussian_moment_tensor(g, K, order: int, *, deg: int | None = None):
    r"""The symmetric tensor :math:`\langle g(z_{a_1})\cdots g(z_{a_k})\rangle_K`, :math:`z\sim\mathcal N(0,K)`,
    k = ``order`` (2 or 4 in the recursions: :math:`\langle\sigma\sigma\rangle`, :math:`\langle\sigma\sigma\sigma\sigma\rangle`).

    Tensor Gauss-Hermite as :func:`gaussian_expectation_n`, contracted point by point with ``einsum`` so
    the (points x N^k) array is never formed (three inputs at 96 nodes per axis fit in memory).

    Args:
      g: elementwise function. K: ``(N, N)``, N <= 3. order: 1..4. deg: nodes per axis
      (default 128, 96, 96 for N = 1, 2, 3).
    Returns:
      array of shape ``(N,) * order``.
    """
    K = jnp.asarray(K, dtype=jnp.result_type(float))
    N = K.shape[-1]
    if K.ndim != 2 or K.shape[0] != N or N > 3:
        raise _checks.PDLTValueError(f"gaussian_moment_tensor: `K` must be (N, N) with N <= 3, got shape {K.shape}")
    if order not in (1, 2, 3, 4):
        raise _checks.PDLTValueError(f"gaussian_moment_tensor: `order` must be 1..4, got {order!r}")
    deg = deg or {1: 128, 2: 96, 3: 96}[N]
    X, W = _grid_np(N, deg)
    s = g(jnp.asarray(X, K.dtype) @ psd_factor(K).T)          # (P, N)
    w = jnp.asarray(W, K.dtype)
    letters = "abcd"[:order]
    spec = "p," + ",".join(f"p{c}" for c in letters) + "->" + letters
    return jnp.einsum(spec, w, *([s] * order), optimize=True)
