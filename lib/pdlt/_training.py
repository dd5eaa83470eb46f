r"""Gradient descent with the book's learning-rate tensor (PDLT §7.2, §10.2; numbering unverified).

The update of one parameter is :math:`\theta_\mu \to \theta_\mu - \eta\,\lambda_{\mu\mu}\,\partial\mathcal L/\partial\theta_\mu`
with :math:`\lambda = \lambda_b^{(\ell)}` for the biases of layer :math:`\ell` and
:math:`\lambda_W^{(\ell)}/n_{\ell-1}` for its weights, and the mean-squared-error loss
:math:`\mathcal L = \tfrac12\sum_{i,a}(z^{(L)}_{i;a} - y_{i;a})^2`. To first order in the global
learning rate :math:`\eta` the outputs then move by :math:`\Delta z_{i;a} = -\eta\sum_{j,b}\hat H_{ij;ab}\,\epsilon_{j;b}`,
with :math:`\epsilon = z - y` and :math:`\hat H` the empirical NTK (:func:`pdlt.empirical_ntk`).

Ensembles: :func:`init_ensemble` stacks the parameters of ``n_nets`` networks along a leading axis
(network ``i`` from ``fold_in(key, i)``, as everywhere in the library) and :func:`train_ensemble`
runs full-batch GD on every network at once (``vmap`` over networks, ``lax.scan`` over steps).
:func:`ntk_change` measures how far the empirical NTK moved during training.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import _checks
from ._activations import get_activation
from ._empirical_ntk import empirical_ntk, learning_rate_tensor
from ._mlp import init_mlp, mlp_apply, network_key

__all__ = ["mse_loss", "gd_step", "init_ensemble", "train_ensemble", "ensemble_apply", "stacked_ntk",
           "ntk_change", "trained_ensemble_run"]


def mse_loss(params, x, y, activation="relu"):
    r""":math:`\tfrac12\sum_{i,a}(z_{i;a}(x) - y_{i;a})^2` for outputs ``y`` of shape ``(N, n_L)``."""
    return 0.5 * jnp.sum((mlp_apply(params, x, activation) - y) ** 2)


def _update(params, grads, eta, lb, lw):
    out = []
    for ell, ((W, b), (gW, gb)) in enumerate(zip(params, grads)):
        out.append((W - eta * (lw[ell] / W.shape[-1]) * gW, b - eta * lb[ell] * gb))
    return tuple(out)


def gd_step(params, x, y, *, eta: float, activation="relu", lambda_b=1.0, lambda_W=1.0):
    """One full-batch gradient-descent step on the MSE loss with the book's learning-rate tensor.

    Args:
      params: tuple of L pairs ``(W, b)``. x: ``(N, n0)``. y: ``(N, n_L)``.
      eta: global learning rate. lambda_b, lambda_W: scalars or per-layer sequences of length L.
    Returns:
      the updated params (same structure).
    """
    lb, lw = learning_rate_tensor(len(params), lambda_b, lambda_W, fn="gd_step")
    grads = jax.grad(mse_loss)(params, x, y, activation)
    return _update(params, grads, eta, lb, lw)


def init_ensemble(key, n0: int, widths, *, C_b=0.0, C_W, n_nets: int, start: int = 0):
    r"""Parameters of networks ``start`` to ``start + n_nets - 1`` of ``key``, stacked on a leading axis.

    Network ``i`` is :func:`pdlt.init_mlp` with key ``fold_in(key, i)``.

    Returns:
      tuple of L pairs ``(W, b)`` with shapes ``(n_nets, n_ell, n_{ell-1})`` and ``(n_nets, n_ell)``.
    Raises:
      PDLTValueError for a bad width, variance or ensemble size.
    """
    fn = "init_ensemble"
    _checks.positive_int(fn, n0=n0, n_nets=n_nets)
    widths = _checks.widths(fn, "widths", widths)
    L = len(widths)
    Cb = _checks.per_layer(fn, "C_b", C_b, L)
    Cw = _checks.per_layer(fn, "C_W", C_W, L)
    _checks.nonnegative(fn, C_b=Cb)
    _checks.positive(fn, C_W=Cw)
    return _init(key, jnp.arange(start, start + n_nets), n0, widths, Cb, Cw)


def _init(key, idx, n0, widths, Cb, Cw):
    """:func:`pdlt.init_mlp` of every network in ``idx``, one compiled program per array shape.

    The same numbers as ``vmap(init_mlp)`` (its key layout: ``split(network_key, 2L)``, W of layer
    ell from key 2 ell, b from key 2 ell + 1), but the draws of one layer shape are compiled once
    and reused by every depth and by every ensemble of that size, where a program per network
    architecture would be compiled again for each.
    """
    dt = jnp.result_type(float)
    keys = _layer_keys(key, idx, len(widths))
    params, fan_in = [], n0
    for ell, n in enumerate(widths):
        W = _scaled_normal(keys[:, 2 * ell], jnp.sqrt(Cw[ell] / fan_in).astype(dt), (n, fan_in))
        b = _scaled_normal(keys[:, 2 * ell + 1], jnp.sqrt(Cb[ell]).astype(dt), (n,))
        params.append((W, b))
        fan_in = n
    return tuple(params)


@partial(jax.jit, static_argnames=("L",))
def _layer_keys(key, idx, L):
    return jax.vmap(lambda i: jax.random.split(network_key(key, i), 2 * L))(idx)


@partial(jax.jit, static_argnames=("shape",))
def _scaled_normal(keys, scale, shape):
    return jax.vmap(lambda k: jax.random.normal(k, shape, scale.dtype) * scale)(keys)


@partial(jax.jit, static_argnames=("activation",))
def ensemble_apply(params, x, activation="relu"):
    """Outputs of every network of a stacked ensemble: ``(n_nets, N, n_L)``."""
    return jax.vmap(lambda p: mlp_apply(p, x, activation))(params)


@partial(jax.jit, static_argnames=("steps", "activation"))
def _train(params, x, y, eta, lb, lw, steps, activation):
    def one(p):
        def step(p, _):
            loss, g = jax.value_and_grad(mse_loss)(p, x, y, activation)
            return _update(p, g, eta, lb, lw), loss

        return jax.lax.scan(step, p, None, length=steps)

    return jax.vmap(one)(params)


def train_ensemble(params, x, y, *, eta: float, steps: int, activation="relu", lambda_b=1.0, lambda_W=1.0):
    r"""Full-batch GD on the MSE loss for every network of a stacked ensemble.

    Args:
      params: stacked parameters from :func:`init_ensemble` (leading axis = network).
      x: training inputs ``(N_A, n0)``; y: targets ``(N_A, n_L)`` (the same for every network).
      eta: global learning rate (> 0); steps: number of GD steps (>= 1).
      lambda_b, lambda_W: the learning-rate tensor, scalars or per-layer sequences of length L.
    Returns:
      ``(params_T, losses)``: trained stacked parameters and the loss before each step, ``(n_nets, steps)``.
    Raises:
      PDLTValueError for a non-positive ``eta``, ``steps`` < 1, a wrong-length rate list or a bad activation.
    """
    fn = "train_ensemble"
    _checks.positive(fn, eta=eta)
    _checks.positive_int(fn, steps=steps)
    act = get_activation(activation, fn)
    lb, lw = learning_rate_tensor(len(params), lambda_b, lambda_W, fn=fn)
    x = jnp.asarray(x)
    y = jnp.asarray(y, dtype=x.dtype)
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise _checks.PDLTValueError(f"{fn}: `y` must have shape (N_A, n_L) with N_A = {x.shape[0]}, got {y.shape}")
    return _train(params, x, y, float(eta), jnp.asarray(lb, x.dtype), jnp.asarray(lw, x.dtype), int(steps), act.name)


def stacked_ntk(params, x, activation="relu", *, lambda_b=1.0, lambda_W=1.0):
    """Empirical NTK of every network of a stacked ensemble: ``(n_nets, n_L, n_L, N, N)``."""
    L = len(params)
    lb, lw = learning_rate_tensor(L, lambda_b, lambda_W, fn="stacked_ntk")
    return _stacked_ntk(params, x, activation, lb, lw)


@partial(jax.jit, static_argnames=("activation", "lb", "lw"))
def _stacked_ntk(params, x, activation, lb, lw):
    return jax.vmap(lambda p: empirical_ntk(p, x, activation, lambda_b=lb, lambda_W=lw))(params)


def ntk_change(H0, HT):
    r"""Relative change of the NTK, :math:`\|\hat H_T - \hat H_0\|_F / \|\hat H_0\|_F`, per network.

    Args:
      H0, HT: NTKs with a leading network axis (any trailing shape).
    Returns:
      ``(n_nets,)``.
    """
    ax = tuple(range(1, jnp.ndim(H0)))
    return jnp.sqrt(jnp.sum((HT - H0) ** 2, axis=ax) / jnp.sum(H0**2, axis=ax))


def trained_ensemble_run(key, x_train, y_train, x_eval, *, widths, C_b, C_W, activation="relu", n_nets: int,
                         eta: float, steps: int, lambda_b=1.0, lambda_W=1.0, ntk: bool = True):
    r"""Initialize ``n_nets`` networks, train them by full-batch GD, and record what the chapters compare.

    Args:
      key: ensemble key (network ``i`` from ``fold_in(key, i)``).
      x_train, y_train: ``(N_A, n0)``, ``(N_A, n_L)``; x_eval: ``(N, n0)`` inputs where outputs/NTKs are recorded.
      widths: ``(n_1, ..., n_L)``; C_b, C_W, activation: initialization; eta, steps, lambda_b, lambda_W: training.
      ntk: also record the empirical NTK on ``x_eval`` before and after training.
    Returns:
      dict with ``z0``, ``zT`` ``(n_nets, N, n_L)``, ``loss0``, ``lossT`` ``(n_nets,)`` and, with ``ntk``,
      ``H0``, ``HT`` ``(n_nets, n_L, n_L, N, N)``.
    """
    x_train = jnp.asarray(x_train)
    p0 = init_ensemble(key, x_train.shape[1], widths, C_b=C_b, C_W=C_W, n_nets=n_nets)
    pT, losses = train_ensemble(p0, x_train, y_train, eta=eta, steps=steps, activation=activation,
                                lambda_b=lambda_b, lambda_W=lambda_W)
    out = {"z0": ensemble_apply(p0, x_eval, activation), "zT": ensemble_apply(pT, x_eval, activation),
           "loss0": losses[:, 0],
           "lossT": jax.vmap(lambda p: mse_loss(p, x_train, jnp.asarray(y_train), activation))(pT)}
    if ntk:
        out["H0"] = stacked_ntk(p0, x_eval, activation, lambda_b=lambda_b, lambda_W=lambda_W)
        out["HT"] = stacked_ntk(pT, x_eval, activation, lambda_b=lambda_b, lambda_W=lambda_W)
    return out
