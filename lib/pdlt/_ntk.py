r"""The neural tangent kernel at infinite width: the frozen NTK recursion (PDLT §8, numbering unverified).

.. math::
   \Theta^{(1)}_{ab} = \lambda_b^{(1)} + \lambda_W^{(1)}\frac{1}{n_0}\sum_j x_{j;a}x_{j;b},\\
   \Theta^{(\ell+1)}_{ab} = \lambda_b^{(\ell+1)} + \lambda_W^{(\ell+1)}\langle\sigma_a\sigma_b\rangle_{K^{(\ell)}}
     + C_W\,\langle\sigma'_a\sigma'_b\rangle_{K^{(\ell)}}\,\Theta^{(\ell)}_{ab}

The learning-rate tensor follows the book: biases of layer ``ell`` get ``lambda_b^(ell)`` and
weights get ``lambda_W^(ell) / n_{ell-1}``.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import _checks
from ._activations import get_activation
from ._gaussian import DEG2, derivative_kernel_map, kernel_map

__all__ = ["ntk_recursion"]

_UNROLL_MAX_L = 12  # depths up to this unroll the layer loop in the compiled program


@_checks.warns_nonfinite("recursion")
def ntk_recursion(x, *, C_b, C_W, L: int, activation="relu", lambda_b=1.0, lambda_W=1.0, deg: int = DEG2):
    r"""Infinite-width kernel :math:`K^{(\ell)}` and frozen NTK :math:`\Theta^{(\ell)}` for N inputs.

    Args:
      x: inputs ``(N, n0)``.
      C_b, C_W: scalars (same at every layer) or sequences of length L (layer 1..L; layer 1's enter
        :math:`K^{(1)}`, layer ell+1's the step from ell to ell+1).
      L: depth (>= 1).
      activation: registry name.
      lambda_b, lambda_W: learning rates, scalars or sequences of length L (layer 1..L), >= 0.
    Returns:
      ``(K, Theta)``, each of shape ``(L, N, N)``; entry ``ell-1`` is layer ``ell``.
    """
    fn = "ntk_recursion"
    _checks.positive_int(fn, L=L)
    act = get_activation(activation, fn)
    lb, lw = _checks.per_layer_rates(fn, lambda_b, lambda_W, L)
    _checks.finite(fn, x=x)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2:
        raise _checks.PDLTValueError(f"{fn}: `x` must have shape (N, n0), got {x.shape}")
    Cb, Cw = _checks.per_layer_variances(fn, C_b, C_W, L)
    dt = x.dtype
    return _ntk_recursion(x, jnp.asarray(Cb, dt), jnp.asarray(Cw, dt), jnp.asarray(lb, dt), jnp.asarray(lw, dt),
                          L, act.name, deg)


@partial(jax.jit, static_argnames=("L", "activation", "deg"))
def _ntk_recursion(x, Cb, Cw, lb, lw, L, activation, deg):
    # One compiled program from the inputs to the last layer: the first-layer kernels are built inside
    # it (no eager dispatches). Shallow networks unroll the layer loop (XLA then writes every layer
    # straight into the stacked output); deep ones use a scan (compile time independent of L).
    xx = (x @ x.T) / x.shape[1]
    K1 = Cb[0] + Cw[0] * xx                                # input_kernel, PDLT eq. (4.8)
    T1 = lb[0] + lw[0] * xx

    def step(K, T, b, w, cb, cw):
        s = kernel_map(activation, K, deg=deg)
        ds = derivative_kernel_map(activation, K, deg=deg)
        return cb + cw * s, b + w * s + cw * ds * T

    if L <= _UNROLL_MAX_L:
        Ks, Ts = [K1], [T1]
        for ell in range(1, L):
            K, T = step(Ks[-1], Ts[-1], lb[ell], lw[ell], Cb[ell], Cw[ell])
            Ks.append(K)
            Ts.append(T)
        return jnp.stack(Ks), jnp.stack(Ts)

    def scan_step(carry, lam):
        K, T = step(*carry, *lam)
        return (K, T), (K, T)

    _, (Ks, Ts) = jax.lax.scan(scan_step, (K1, T1), (lb[1:], lw[1:], Cb[1:], Cw[1:]))
    return jnp.concatenate([K1[None], Ks]), jnp.concatenate([T1[None], Ts])

