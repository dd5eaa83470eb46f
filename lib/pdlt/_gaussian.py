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
]

DEG1 = 128  # default nodes, one variable
DEG2 = 64   # default nodes per axis, two variables


@functools.lru_cache(maxsize=None)
def _nodes_np(deg: int):
    x, w = np.polynomial.hermite_e.hermegauss(deg)
    return x, w / np.sqrt(2.0 * np.pi)


def std_normal_nodes(deg: int = DEG1, dtype=None):
    """Nodes ``x`` and weights ``w`` with ``E[f(Z)] ~= sum(w * f(x))`` for ``Z ~ N(0, 1)``.

    Args: deg: number of nodes (even numbers avoid a node at 0), at most 200 (beyond that the
      weights underflow). dtype: result dtype (default: JAX's default float).
    Returns: two arrays of shape ``(deg,)``.
    """
    _checks.positive_int("std_normal_nodes", deg=deg)
    if deg > 200:
        raise _checks.PDLTValueError(f"std_normal_nodes: `deg` must be <= 200, got {deg}")
    x, w = _nodes_np(deg)
    dtype = dtype or jnp.asarray(1.0).dtype
    return jnp.asarray(x, dtype), jnp.asarray(w, dtype)


def gaussian_expectation(f, K, *, deg: int = DEG1):
    r"""One-variable Gaussian expectation :math:`\langle f(z)\rangle_K = E[f(z)],\ z\sim\mathcal N(0,K)`.

    Args:
      f: elementwise function of one array argument.
      K: variance, scalar or array (broadcasts; the result has K's shape). ``K >= 0``.
      deg: Gauss-Hermite nodes.
    Returns: array of K's shape and dtype.
    """
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
    Returns: array of shape ``K.shape[:-2]``.
    """
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

    Args: K: covariance matrix (array-like, n x n). indices: sequence of integers in [0, n).
    Returns: float.
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


def scale_invariant_kernel(K, a_plus: float, a_minus: float):
    r"""Closed form of :math:`\langle\sigma(z_a)\sigma(z_b)\rangle_K` for
    :math:`\sigma = a_+ z\Theta(z) + a_- z\Theta(-z)` (the arc-cosine kernel; ReLU: PDLT §5.5).

    With :math:`\rho = K_{ab}/\sqrt{K_{aa}K_{bb}}`, :math:`s = (a_+ + a_-)/2`, :math:`d = (a_+ - a_-)/2`:
    :math:`\sqrt{K_{aa}K_{bb}}\,[s^2\rho + d^2 \tfrac{2}{\pi}(\sqrt{1-\rho^2} + \rho\arcsin\rho)]`.

    Args: K: kernel matrix ``(..., N, N)``. Returns: array of the same shape.
    """
    rho, s = _rho_and_scale(K)
    sp, dm = 0.5 * (a_plus + a_minus), 0.5 * (a_plus - a_minus)
    absabs = (2.0 / jnp.pi) * (jnp.sqrt(jnp.clip(1.0 - rho * rho, 0.0)) + rho * jnp.arcsin(rho))
    return s * (sp * sp * rho + dm * dm * absabs)


def scale_invariant_derivative_kernel(K, a_plus: float, a_minus: float):
    r"""Closed form of :math:`\langle\sigma'(z_a)\sigma'(z_b)\rangle_K` for the scale-invariant family:
    :math:`s^2 + d^2\,\tfrac{2}{\pi}\arcsin\rho` (independent of the overall scale of K)."""
    rho, _ = _rho_and_scale(K)
    sp, dm = 0.5 * (a_plus + a_minus), 0.5 * (a_plus - a_minus)
    return sp * sp + dm * dm * (2.0 / jnp.pi) * jnp.arcsin(rho)


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
    K = jnp.asarray(K)
    if act.scale_invariant:
        return scale_invariant_kernel(K, act.a_plus, act.a_minus)
    out = _quadrature_pair_map(act.sigma, K, deg)
    diag = gaussian_expectation(lambda z: act.sigma(z) ** 2, jnp.diagonal(K, axis1=-2, axis2=-1), deg=2 * deg)
    return _set_diag(out, diag)


def derivative_kernel_map(activation, K, *, deg: int = DEG2):
    r"""The matrix :math:`\langle\sigma'(z_a)\sigma'(z_b)\rangle_K` (drives the NTK recursion, PDLT §8)."""
    act: Activation = get_activation(activation, "derivative_kernel_map")
    K = jnp.asarray(K)
    if act.scale_invariant:
        return scale_invariant_derivative_kernel(K, act.a_plus, act.a_minus)
    out = _quadrature_pair_map(act.dsigma, K, deg)
    diag = gaussian_expectation(lambda z: act.dsigma(z) ** 2, jnp.diagonal(K, axis1=-2, axis2=-1), deg=2 * deg)
    return _set_diag(out, diag)


def _set_diag(M, d):
    N = M.shape[-1]
    eye = jnp.eye(N, dtype=bool)
    return jnp.where(eye, d[..., :, None] * jnp.ones_like(M), M)
