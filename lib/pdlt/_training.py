r"""Gradient descent with the book's learning-rate tensor (PDLT §7.2, numbering unverified).

The update of one parameter is :math:`\theta_\mu \to \theta_\mu - \eta\,\lambda_{\mu\mu}\,\partial\mathcal L/\partial\theta_\mu`
with :math:`\lambda = \lambda_b^{(\ell)}` for the biases of layer :math:`\ell` and
:math:`\lambda_W^{(\ell)}/n_{\ell-1}` for its weights, and the mean-squared-error loss
:math:`\mathcal L = \tfrac12\sum_{i,a}(z^{(L)}_{i;a} - y_{i;a})^2`. To first order in the global
learning rate :math:`\eta` the outputs then move by :math:`\Delta z_{i;a} = -\eta\sum_{j,b}\hat H_{ij;ab}\,\epsilon_{j;b}`,
with :math:`\epsilon = z - y` and :math:`\hat H` the empirical NTK (:func:`pdlt.empirical_ntk`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ._empirical_ntk import learning_rate_tensor
from ._mlp import mlp_apply

__all__ = ["mse_loss", "gd_step"]


def mse_loss(params, x, y, activation="relu"):
    r""":math:`\tfrac12\sum_{i,a}(z_{i;a}(x) - y_{i;a})^2` for outputs ``y`` of shape ``(N, n_L)``."""
    return 0.5 * jnp.sum((mlp_apply(params, x, activation) - y) ** 2)


def gd_step(params, x, y, *, eta: float, activation="relu", lambda_b=1.0, lambda_W=1.0):
    """One full-batch gradient-descent step on the MSE loss with the book's learning-rate tensor.

    Args:
      params: tuple of L pairs ``(W, b)``. x: ``(N, n0)``. y: ``(N, n_L)``.
      eta: global learning rate. lambda_b, lambda_W: scalars or per-layer sequences of length L.
    Returns: the updated params (same structure).
    """
    lb, lw = learning_rate_tensor(len(params), lambda_b, lambda_W, fn="gd_step")
    grads = jax.grad(mse_loss)(params, x, y, activation)
    out = []
    for ell, ((W, b), (gW, gb)) in enumerate(zip(params, grads)):
        out.append((W - eta * (lw[ell] / W.shape[1]) * gW, b - eta * lb[ell] * gb))
    return tuple(out)
