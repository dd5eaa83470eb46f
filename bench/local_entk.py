"""Fallback empirical NTK for benchmark 4 when this checkout's pdlt has no ``empirical_ntk`` yet.

The Jacobian-contraction form: ``H_{i1 i2; a1 a2} = sum_mu lambda_mu dz_{i1;a1}/dtheta_mu dz_{i2;a2}/dtheta_mu``
with the book's learning rates (lambda_b for biases, lambda_W / n_{ell-1} for weights), via ``jax.jacrev``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

import pdlt


def empirical_ntk(params, x, activation="relu", *, lambda_b=1.0, lambda_W=1.0):
    jac = jax.jacrev(lambda p: pdlt.mlp_apply(p, x, activation))(params)   # leaves (N, nL, *shape)
    H = 0.0
    for (JW, Jb), (W, _) in zip(jac, params):
        H = H + lambda_b * jnp.einsum("aik,bjk->ijab", Jb, Jb)
        H = H + (lambda_W / W.shape[1]) * jnp.einsum("aikm,bjkm->ijab", JW, JW)
    return H
