r"""One gradient-descent step seen in function space (PDLT §7.2, numbering unverified).

For the MSE loss :math:`\mathcal L = \tfrac12\sum_{i,a}\epsilon_{i;a}^2`, :math:`\epsilon = z - y`, one step with
the learning-rate tensor :math:`\lambda` and global rate :math:`\eta` moves the outputs by

.. math:: \Delta z_{i;a} = -\eta\sum_{j,b}\hat H_{ij;ab}\,\epsilon_{j;b} + O(\eta^2),

so the NTK alone governs a small step. :func:`function_space_step` returns both sides.
"""
from __future__ import annotations

import jax.numpy as jnp

from . import _checks
from ._empirical_ntk import empirical_ntk
from ._mlp import mlp_apply
from ._training import gd_step

__all__ = ["function_space_step", "ntk_prediction"]


def ntk_prediction(H, eps, eta):
    r""":math:`-\eta\sum_{j,b}H_{ij;ab}\epsilon_{j;b}` for ``H`` of shape ``(n_L, n_L, N, N)`` and ``eps`` of shape ``(N, n_L)``;
    returns shape ``(N, n_L)``."""
    return -eta * jnp.einsum("ijab,bj->ai", H, eps)


def function_space_step(params, x, y, *, eta, activation="relu", lambda_b=1.0, lambda_W=1.0):
    r"""The measured output change of one GD step and its NTK prediction.

    Args:
      params: tuple of L pairs ``(W, b)``. x: inputs ``(N, n0)``. y: targets ``(N, n_L)``.
      eta: global learning rate (> 0). activation: registry name.
      lambda_b, lambda_W: learning rates, scalars or per-layer sequences of length L (>= 0).
    Returns:
      ``(dz, dz_ntk)``, both ``(N, n_L)``: :math:`z(\theta_{t+1}) - z(\theta_t)` and :math:`-\eta\hat H\epsilon`.
    Raises:
      PDLTValueError: non-positive ``eta`` or an invalid learning-rate tensor, before compute.
    """
    _checks.positive("function_space_step", eta=eta)
    H = empirical_ntk(params, x, activation, lambda_b=lambda_b, lambda_W=lambda_W)
    z0 = mlp_apply(params, x, activation)
    new = gd_step(params, x, y, eta=eta, activation=activation, lambda_b=lambda_b, lambda_W=lambda_W)
    return mlp_apply(new, x, activation) - z0, ntk_prediction(H, z0 - y, eta)
