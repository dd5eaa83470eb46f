r"""Explicit-weight MLPs in the book's convention (PDLT eq. (2.5)-(2.6) and (2.19)-(2.20), unverified numbering).

.. math::
   z^{(1)}_{i} = b^{(1)}_i + \sum_j W^{(1)}_{ij} x_j,\qquad
   z^{(\ell+1)}_{i} = b^{(\ell+1)}_i + \sum_j W^{(\ell+1)}_{ij}\sigma(z^{(\ell)}_j),

with :math:`b^{(\ell)}_i\sim\mathcal N(0, C_b)` and :math:`W^{(\ell)}_{ij}\sim\mathcal N(0, C_W/n_{\ell-1})`.

Parameters are a tuple of ``(W, b)`` pairs, ``W`` of shape ``(n_ell, n_{ell-1})``. Inputs are a
batch ``x`` of shape ``(N, n0)``; preactivations are ``(N, n_ell)`` per layer. Network ``i`` of an
ensemble draws its weights from ``jax.random.fold_in(key, i)``, so a network's weights depend only
on the seed and its index (any chunking or sharding of the ensemble gives the same networks).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _checks
from ._activations import get_activation

__all__ = ["init_mlp", "mlp_preactivations", "mlp_apply", "network_key", "subkey", "forward_pass"]


def network_key(key, index):
    """The PRNG key of network ``index`` of an ensemble drawn from ``key``: ``fold_in(key, index)``.

    ``fold_in`` takes 32 bits; a 64-bit index at or beyond 2^32 folds its high word in as well
    (``fold_in(fold_in(key, lo), hi)``), so networks 2^32 apart never share a key, while every
    index below 2^32 keeps its key.
    """
    k = jax.random.fold_in(key, index)
    idx = jnp.asarray(index)
    if jnp.issubdtype(idx.dtype, jnp.integer) and idx.dtype.itemsize > 4:
        hi = (idx >> 32).astype(jnp.uint32)
        k = jax.lax.cond(hi > 0, lambda: jax.random.fold_in(k, hi), lambda: k)
    return k


def subkey(key, *path):
    """The sub-key of ``key`` at ``path``: the ``fold_in`` chain ``fold_in(...fold_in(key, path[0])..., path[-1])``.

    The way to derive the keys of an experiment's grid: give each use site its own tag and each grid
    point its indices, e.g. ``subkey(ch.key, 3, i_depth, i_width)``. Distinct paths of one length give
    distinct keys (up to hash collisions of the PRNG), where an arithmetic salt such as
    ``fold_in(key, 1000 * L + n)`` lets two grid points share a key. Every entry of ``path`` is a
    Python (or NumPy) integer in ``[0, 2^32)``; floats are refused (a grid value ``0.5`` is not an
    index: use its position in the grid).
    """
    import numbers

    _checks.prng_key("subkey", "key", key)
    for j, i in enumerate(path):
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < 2**32:
            raise _checks.PDLTValueError(f"subkey: `path[{j}]` must be an integer in [0, 2^32) (a tag or a grid "
                                         f"index), got {i!r}")
        key = jax.random.fold_in(key, int(i))
    return key


def init_mlp(key, n0: int, widths, *, C_b=0.0, C_W, dtype=None):
    r"""Sample one MLP's parameters.

    Args:
      key: a ``jax.random.key``.
      n0: input dimension.
      widths: ``(n_1, ..., n_L)``; the last entry is the output width.
      C_b, C_W: scalars, or sequences of length L (one per layer ell = 1..L); traced scalars are
        accepted inside ``jit`` (unchecked).
    Returns:
      tuple of L pairs ``(W, b)``; ``W^{(ell)}`` has shape ``(n_ell, n_{ell-1})``.
    """
    fn = "init_mlp"
    _checks.positive_int(fn, n0=n0)
    widths = _checks.widths(fn, "widths", widths)
    L = len(widths)
    if any(isinstance(c, jax.core.Tracer) for c in (C_b, C_W)):   # traced scalars (inside jit): no value checks
        Cb, Cw = ((c,) * L if jnp.ndim(c) == 0 else tuple(c) for c in (C_b, C_W))
    else:
        Cb, Cw = _checks.per_layer_variances(fn, C_b, C_W, L)
    dtype = dtype or jnp.result_type(float)
    keys = jax.random.split(key, 2 * L)
    params, fan_in = [], n0
    for ell, n in enumerate(widths):
        W = jax.random.normal(keys[2 * ell], (n, fan_in), dtype) * jnp.sqrt(Cw[ell] / fan_in).astype(dtype)
        b = jax.random.normal(keys[2 * ell + 1], (n,), dtype) * jnp.sqrt(Cb[ell]).astype(dtype)
        params.append((W, b))
        fan_in = n
    return tuple(params)


def mlp_preactivations(params, x, activation="relu"):
    """All preactivations ``z^(1)..z^(L)`` of one network for inputs ``x`` of shape ``(N, n0)``.

    Returns:
      list of L arrays, ``z^(ell)`` of shape ``(N, n_ell)``.
    """
    return forward_pass(params, x, get_activation(activation, "mlp_preactivations").sigma)


def forward_pass(params, x, sigma, *, xi=None, gamma=None):
    r"""The one explicit forward pass of the library: preactivations ``z^(1)..z^(L)`` of one network.

    :math:`z^{(1)} = b^{(1)} + W^{(1)}x`; then :math:`z^{(\ell+1)} = b^{(\ell+1)} + W^{(\ell+1)}\sigma(z^{(\ell)})`
    (``xi`` None: the plain MLP), or :math:`z^{(\ell+1)} = \xi z^{(\ell)} + \gamma[b^{(\ell+1)} + W^{(\ell+1)}\sigma(z^{(\ell)})]`
    (the residual MLP of PDLT Appendix B).

    Args:
      params: sequence of L pairs ``(W, b)``; x: ``(N, n0)``; sigma: the activation function;
      xi, gamma: skip and branch multipliers (both or neither).
    Returns:
      list of L arrays ``(N, n_ell)``.
    """
    W, b = params[0]
    z = x @ W.T + b
    zs = [z]
    for W, b in params[1:]:
        branch = sigma(z) @ W.T + b
        z = branch if xi is None else xi * z + gamma * branch
        zs.append(z)
    return zs


def mlp_apply(params, x, activation="relu"):
    """The network output ``z^(L)`` of shape ``(N, n_L)``."""
    return mlp_preactivations(params, x, activation)[-1]
