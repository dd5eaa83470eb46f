r"""The infinite-width kernel recursion (PDLT §4.3 and §5, eq. (4.118)/(5.4), numbering unverified).

.. math::
   K^{(1)}_{ab} = C_b + C_W \frac{1}{n_0}\sum_j x_{j;a}x_{j;b},\qquad
   K^{(\ell+1)}_{ab} = C_b + C_W \langle\sigma_a\sigma_b\rangle_{K^{(\ell)}}

for N inputs at once (an N x N kernel per layer).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import _checks
from ._activations import get_activation
from ._gaussian import DEG2, kernel_map

__all__ = ["input_kernel", "kernel_recursion"]


def input_kernel(x, *, C_b: float, C_W: float):
    r"""First-layer kernel :math:`K^{(1)} = C_b + C_W\,x x^\top/n_0` (PDLT eq. (4.8)).

    Args:
      x: inputs of shape ``(N, n0)``. Returns: ``(N, N)``.
    """
    _checks.finite("input_kernel", x=x)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2:
        raise _checks.PDLTValueError(f"input_kernel: `x` must have shape (N, n0), got {x.shape}")
    _checks.nonnegative("input_kernel", C_b=C_b)
    _checks.positive("input_kernel", C_W=C_W)
    return C_b + C_W * (x @ x.T) / x.shape[1]


def kernel_recursion(K1, *, C_b, C_W, L: int, activation="relu", deg: int = DEG2):
    r"""Infinite-width kernels :math:`K^{(\ell)}` for :math:`\ell = 1..L`.

    Args:
      K1: first-layer kernel, a scalar (single input) or an ``(N, N)`` matrix.
      C_b, C_W: bias and weight variances; scalars, or sequences of length L-1 (one per layer
        ``ell+1 = 2..L``).
      L: depth (number of layers, >= 1).
      activation: a name in ``pdlt.ACTIVATIONS``.
      deg: Gauss-Hermite nodes per axis for non-closed-form activations.
    Returns:
      Array of shape ``(L,) + K1.shape``; entry ``ell-1`` is :math:`K^{(\ell)}`.
    """
    _checks.positive_int("kernel_recursion", L=L)
    act = get_activation(activation, "kernel_recursion")
    Cb, Cw = map(jnp.asarray, _checks.per_layer_variances("kernel_recursion", C_b, C_W, max(L - 1, 1)))
    _checks.kernel("kernel_recursion", "K1", K1)
    K1 = jnp.asarray(K1, dtype=jnp.result_type(float))
    scalar = K1.ndim == 0
    K = K1[None, None] if scalar else K1
    out = _kernel_recursion(K, Cb.astype(K.dtype), Cw.astype(K.dtype), L, act.name, deg)
    _checks.warn_nonfinite("kernel_recursion", out, "kernels")
    return out[:, 0, 0] if scalar else out


@partial(jax.jit, static_argnames=("L", "activation", "deg"))
def _kernel_recursion(K1, Cb, Cw, L, activation, deg):
    def step(K, cs):
        cb, cw = cs
        Kn = cb + cw * kernel_map(activation, K, deg=deg)
        return Kn, Kn

    if L == 1:
        return K1[None]
    _, Ks = jax.lax.scan(step, K1, (Cb, Cw))
    return jnp.concatenate([K1[None], Ks], axis=0)
