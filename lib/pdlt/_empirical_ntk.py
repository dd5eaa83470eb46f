r"""The empirical neural tangent kernel of a network (PDLT §7.2 and §8.0, numbering unverified).

.. math::
   \hat H_{i_1 i_2; a_1 a_2} = \sum_{\mu,\nu}\lambda_{\mu\nu}
     \frac{\partial z^{(L)}_{i_1;a_1}}{\partial\theta_\mu}\frac{\partial z^{(L)}_{i_2;a_2}}{\partial\theta_\nu},

with the book's diagonal learning-rate tensor: :math:`\lambda_b^{(\ell)}` for the biases of layer
:math:`\ell` and :math:`\lambda_W^{(\ell)}/n_{\ell-1}` for its weights. For an MLP the derivative with
respect to a bias is the backward Jacobian :math:`J^{(\ell)}_{ik;a} = \partial z^{(L)}_{i;a}/\partial z^{(\ell)}_{k;a}`
and with respect to a weight it is :math:`J^{(\ell)}_{ik;a}\,\sigma^{(\ell-1)}_{j;a}`, so layer :math:`\ell` contributes

.. math:: \Big[\lambda_b^{(\ell)} + \frac{\lambda_W^{(\ell)}}{n_{\ell-1}}\sum_j\sigma^{(\ell-1)}_{j;a_1}\sigma^{(\ell-1)}_{j;a_2}\Big]
          \sum_k J^{(\ell)}_{i_1k;a_1}J^{(\ell)}_{i_2k;a_2}

(with :math:`\sigma^{(0)} = x`). :func:`empirical_ntk` evaluates this by one backward sweep;
:func:`empirical_ntk_autodiff` is the same quantity from ``jax.jacrev`` of the parameters, the
reference the fast version is tested against (and against finite differences).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _checks
from ._activations import get_activation
from ._mlp import forward_pass, mlp_apply

__all__ = ["empirical_ntk", "empirical_ntk_autodiff", "empirical_ntk_forward", "ntk_forward_step", "learning_rate_tensor"]


def learning_rate_tensor(L: int, lambda_b=1.0, lambda_W=1.0, *, fn: str = "learning_rate_tensor"):
    r"""Per-layer ``(lambda_b, lambda_W)`` as two tuples of length L, validated (>= 0).

    Args:
      L: depth. lambda_b, lambda_W: scalars or sequences of length L (layer 1..L).
    Raises:
      PDLTValueError naming the argument for a negative value or a wrong length.
    """
    return _checks.per_layer_rates(fn, lambda_b, lambda_W, L)


def _forward(params, x, sigma):
    """Activations ``[x, sigma(z^(1)), ..., sigma(z^(L))]`` and preactivations ``z^(1..L)``."""
    zs = forward_pass(params, x, sigma)
    return [x] + [sigma(z) for z in zs], zs


def empirical_ntk(params, x, activation="relu", *, lambda_b=1.0, lambda_W=1.0, per_layer: bool = False):
    r"""Empirical NTK :math:`\hat H_{i_1i_2;a_1a_2}` of one MLP.

    Args:
      params: tuple of L pairs ``(W, b)`` as made by :func:`pdlt.init_mlp`.
      x: inputs ``(N, n0)``.
      activation: registry name.
      lambda_b, lambda_W: learning rates, scalars or per-layer sequences of length L, >= 0.
      per_layer: return each layer's contribution separately.
    Returns:
      ``(n_L, n_L, N, N)`` array indexed ``[i1, i2, a1, a2]``; with ``per_layer`` an ``(L, n_L, n_L, N, N)``
      array whose sum over the first axis is the NTK. Use ``jax.vmap`` over params for an ensemble.
    """
    act = get_activation(activation, "empirical_ntk")
    L = len(params)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn="empirical_ntk")
    hs, zs = _forward(params, x, act.sigma)
    N, nL = zs[-1].shape
    J = jnp.broadcast_to(jnp.eye(nL, dtype=x.dtype), (N, nL, nL))  # d z^L / d z^L, per input
    parts = [None] * L
    for ell in range(L - 1, -1, -1):
        h = hs[ell]                                                  # sigma^(ell-1) (x for the first layer)
        gram = lb[ell] + lw[ell] * (h @ h.T) / h.shape[1]            # (N, N)
        JJ = jnp.einsum("aik,bjk->ijab", J, J)                       # (nL, nL, N, N)
        parts[ell] = gram * JJ
        if ell > 0:
            W = params[ell][0]
            J = (J @ W) * act.dsigma(zs[ell - 1])[:, None, :]
    stacked = jnp.stack(parts)
    return stacked if per_layer else jnp.sum(stacked, axis=0)


def empirical_ntk_autodiff(params, x, activation="relu", *, lambda_b=1.0, lambda_W=1.0):
    """Reference implementation of :func:`empirical_ntk` from ``jax.jacrev`` (slow; for tests)."""
    L = len(params)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn="empirical_ntk_autodiff")
    Jac = jax.jacrev(lambda p: mlp_apply(p, x, activation))(params)   # leaves (N, nL, *param.shape)
    H = 0.0
    for ell, (JW, Jb) in enumerate(Jac):
        fan_in = params[ell][0].shape[1]
        H = H + lb[ell] * jnp.einsum("aik,bjk->ijab", Jb, Jb)
        H = H + (lw[ell] / fan_in) * jnp.einsum("aikm,bjkm->ijab", JW, JW)
    return H


def ntk_forward_step(H, z, W, b, sigma, dsigma, lambda_b, lambda_W):
    r"""One step of the NTK forward equation (PDLT §8.0, numbering unverified), for one network:

    .. math:: \hat H^{(\ell+1)}_{i_1i_2;a_1a_2} = \delta_{i_1i_2}\Big[\lambda_b + \frac{\lambda_W}{n_\ell}\sum_j\sigma_{j;a_1}\sigma_{j;a_2}\Big]
              + \sum_{j_1j_2}W_{i_1j_1}W_{i_2j_2}\,\sigma'_{j_1;a_1}\sigma'_{j_2;a_2}\,\hat H^{(\ell)}_{j_1j_2;a_1a_2}.

    Args:
      H: NTK of layer ell, ``(n_ell, n_ell, N, N)``. z: preactivations of layer ell, ``(N, n_ell)``.
      W, b: weights ``(n_{ell+1}, n_ell)`` and biases of layer ell+1. sigma, dsigma: the activation and its derivative.
      lambda_b, lambda_W: learning rates of layer ell+1.
    Returns:
      ``(H_next, z_next)`` with shapes ``(n_{ell+1}, n_{ell+1}, N, N)`` and ``(N, n_{ell+1})``.
    """
    s, ds = sigma(z), dsigma(z)
    gram = lambda_b + lambda_W * (s @ s.T) / z.shape[1]
    M = H * ds.T[:, None, :, None] * ds.T[None, :, None, :]
    WM = jnp.einsum("ij,jkab->ikab", W, M)
    Hn = jnp.eye(W.shape[0], dtype=H.dtype)[:, :, None, None] * gram + jnp.einsum("ikab,mk->imab", WM, W)
    return Hn, s @ W.T + b


def empirical_ntk_forward(params, x, activation="relu", *, lambda_b=1.0, lambda_W=1.0):
    r"""The NTK of every layer of one MLP by the forward equation (:func:`ntk_forward_step`).

    Same quantity as :func:`empirical_ntk` for the last layer, built layer by layer instead of by a
    backward sweep (cost :math:`O(N^2 n^3)` per layer; meant for the statistics of hidden layers).

    Args:
      as :func:`empirical_ntk`.
    Returns:
      list of L arrays, layer ell's NTK of shape ``(n_ell, n_ell, N, N)``.
    """
    act = get_activation(activation, "empirical_ntk_forward")
    L = len(params)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn="empirical_ntk_forward")
    W, b = params[0]
    gram = lb[0] + lw[0] * (x @ x.T) / x.shape[1]
    H = jnp.eye(W.shape[0], dtype=x.dtype)[:, :, None, None] * gram
    z = x @ W.T + b
    out = [H]
    for ell in range(1, L):
        W, b = params[ell]
        H, z = ntk_forward_step(H, z, W, b, act.sigma, act.dsigma, lb[ell], lw[ell])
        out.append(H)
    return out
