r"""The differential of the NTK (dNTK) of a real network, from JAX derivatives (PDLT ch. 11, numbering unverified).

.. math::
   \widehat{dH}_{i_0i_1i_2;a_0a_1a_2} = \sum_{\mu,\nu}\lambda_{\mu\nu}
     \frac{\partial \hat H_{i_1i_2;a_1a_2}}{\partial\theta_\mu}\frac{\partial z_{i_0;a_0}}{\partial\theta_\nu},

the rate at which the NTK moves when the parameters move along the learning-rate-weighted gradient of
one output. One GD step on the MSE loss changes the NTK by
:math:`\Delta\hat H_{i_1i_2;a_1a_2} = -\eta\sum_{i_0,a_0}\widehat{dH}_{i_0i_1i_2;a_0a_1a_2}\,\epsilon_{i_0;a_0} + O(\eta^2)`.
For a one-layer network (linear in its parameters) the dNTK vanishes identically.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from ._empirical_ntk import empirical_ntk, learning_rate_tensor
from ._mlp import mlp_apply

__all__ = ["empirical_dntk", "ensemble_dntk_moment"]


def empirical_dntk(params, x, activation="relu", *, lambda_b=1.0, lambda_W=1.0):
    r"""dNTK of one MLP: array ``(n_L, n_L, n_L, N, N, N)`` indexed ``[i0, i1, i2, a0, a1, a2]``.

    Computed as directional derivatives (``jax.jvp``) of :func:`pdlt.empirical_ntk` along the tangents
    :math:`\lambda\,\partial z_{i_0;a_0}/\partial\theta`.
    """
    L = len(params)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn="empirical_dntk")
    return _dntk(params, x, activation, lb, lw)


@partial(jax.jit, static_argnames=("activation", "lb", "lw"))
def _dntk(params, x, activation, lb, lw):
    Jac = jax.jacrev(lambda p: mlp_apply(p, x, activation))(params)      # leaves (N, nL, *shape)
    N, nL = x.shape[0], Jac[0][1].shape[1]
    scaled = tuple((lw[ell] / W.shape[1] * JW, lb[ell] * Jb)
                   for ell, ((W, _), (JW, Jb)) in enumerate(zip(params, Jac)))
    flat = jax.tree_util.tree_map(lambda t: t.reshape((N * nL,) + t.shape[2:]), scaled)

    def H(p):
        return empirical_ntk(p, x, activation, lambda_b=lb, lambda_W=lw)

    def along(t):
        return jax.jvp(H, (params,), (t,))[1]                                 # (nL, nL, N, N)

    d = jax.vmap(along)(flat)                                                 # (N*nL, nL, nL, N, N)
    d = d.reshape((N, nL) + d.shape[1:])                                      # (a0, i0, i1, i2, a1, a2)
    return jnp.transpose(d, (1, 2, 3, 0, 4, 5))


def ensemble_dntk_moment(params, x, activation="relu", *, lambda_b=1.0, lambda_W=1.0):
    r"""Per-network :math:`\widehat{dH}_{000;aaa}\,z_{0;a}` and the NTK :math:`\hat H_{00;aa}` on a single input.

    Args: params: stacked ensemble (leading network axis); x: ``(1, n0)``.
    Returns: ``(dHz, H)``, each ``(n_nets,)``; the mean of ``dHz`` estimates :math:`\mathbb E[\widehat{dH}\,z]`.
    """
    L = len(jax.tree_util.tree_leaves(params)) // 2
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn="ensemble_dntk_moment")
    return _moment(params, x, activation, lb, lw)


@partial(jax.jit, static_argnames=("activation", "lb", "lw"))
def _moment(params, x, activation, lb, lw):
    def one(p):
        dH = _dntk(p, x, activation, lb, lw)[0, 0, 0, 0, 0, 0]
        z = mlp_apply(p, x, activation)[0, 0]
        H = empirical_ntk(p, x, activation, lambda_b=lb, lambda_W=lw)[0, 0, 0, 0]
        return dH * z, H

    return jax.vmap(one)(params)
