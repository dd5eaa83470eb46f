r"""Monte Carlo ensembles of MLPs at initialization (PDLT §2.3, §4).

Two samplers of the per-layer *conditional metric*

.. math:: \hat G^{(1)}_{ab} = C_b + C_W\frac{1}{n_0}x_a\!\cdot x_b,\qquad
          \hat G^{(\ell+1)}_{ab} = C_b + C_W\frac{1}{n_\ell}\sum_j\sigma(z^{(\ell)}_{j;a})\sigma(z^{(\ell)}_{j;b}),

the covariance of layer ``ell`` given the layers below (given layer ``ell-1``, the preactivations
:math:`z^{(\ell)}_{i}` are iid over ``i`` with covariance :math:`\hat G^{(\ell)}`; PDLT §4.1-4.2):

* ``method="explicit"``: sample every weight and bias and run the network (needed for gradients);
* ``method="conditional"``: sample layer ``ell+1`` directly as :math:`\hat G^{(\ell+1)\,1/2} g` with
  fresh standard normals ``g`` -- the same distribution at O(N^2 n) instead of O(N n^2) cost per layer.

Network ``i`` uses the key ``fold_in(key, i)`` for either method, so results do not depend on how
the ensemble is chunked or sharded.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import _checks
from ._activations import get_activation
from ._kernel import input_kernel
from ._mlp import init_mlp, mlp_preactivations, network_key

__all__ = ["METHODS", "sample_network_metrics", "ensemble_metrics"]

METHODS = ("conditional", "explicit")


def _psd_sqrt_factor(G):
    """A factor R with R R^T = G for a PSD matrix G (Cholesky with a tiny relative jitter)."""
    N = G.shape[-1]
    jitter = 1e-12 if G.dtype == jnp.float64 else 1e-6
    scale = jnp.maximum(jnp.trace(G) / N, jnp.finfo(G.dtype).tiny)
    return jnp.linalg.cholesky(G + jitter * scale * jnp.eye(N, dtype=G.dtype))


def _conditional_one(key, G1, widths, C_b, C_W, sigma):
    L = len(widths)
    keys = jax.random.split(key, L)
    Gs, G = [G1], G1
    z = None
    for ell in range(L):
        R = _psd_sqrt_factor(G)
        g = jax.random.normal(keys[ell], (G.shape[0], widths[ell]), G.dtype)
        z = R @ g                                  # z^(ell+1): (N, n_{ell+1})
        if ell < L - 1:
            s = sigma(z)
            G = C_b[ell + 1] + C_W[ell + 1] * (s @ s.T) / widths[ell]
            Gs.append(G)
    return jnp.stack(Gs), z


def _explicit_one(key, x, widths, C_b, C_W, act):
    params = init_mlp(key, x.shape[1], widths, C_b=C_b, C_W=C_W, dtype=x.dtype)
    zs = mlp_preactivations(params, x, act)
    sigma = get_activation(act).sigma
    Gs = [C_b[0] + C_W[0] * (x @ x.T) / x.shape[1]]
    for ell in range(len(widths) - 1):
        s = sigma(zs[ell])
        Gs.append(C_b[ell + 1] + C_W[ell + 1] * (s @ s.T) / widths[ell])
    return jnp.stack(Gs), zs[-1]


def _validate(fn, x, widths, C_b, C_W, activation, method):
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2:
        raise _checks.PDLTValueError(f"{fn}: `x` must have shape (N, n0), got {x.shape}")
    widths = _checks.widths(fn, "widths", widths)
    L = len(widths)
    Cb = _checks.per_layer(fn, "C_b", C_b, L)
    Cw = _checks.per_layer(fn, "C_W", C_W, L)
    _checks.nonnegative(fn, C_b=Cb)
    _checks.positive(fn, C_W=Cw)
    act = get_activation(activation, fn)
    _checks.one_of(fn, "method", method, METHODS)
    return x, widths, Cb, Cw, act


def sample_network_metrics(key, index, x, *, widths, C_b, C_W, activation="relu", method="conditional"):
    r"""Conditional metrics :math:`\hat G^{(1..L)}` and the output :math:`z^{(L)}` of network ``index``.

    Args:
      key: ensemble key; the network uses ``fold_in(key, index)``.
      index: integer network index.
      x: inputs ``(N, n0)``.
      widths: ``(n_1, ..., n_L)`` (the last is the output width).
      C_b, C_W: scalars or per-layer sequences of length L.
      activation: registry name. method: ``"conditional"`` or ``"explicit"``.
    Returns:
      ``(Ghat, z)``: ``Ghat`` of shape ``(L, N, N)``, ``z`` of shape ``(N, n_L)``.
    """
    fn = "sample_network_metrics"
    x, widths, Cb, Cw, act = _validate(fn, x, widths, C_b, C_W, activation, method)
    return _one(key, index, x, widths, Cb, Cw, act.name, method)


@partial(jax.jit, static_argnames=("widths", "C_b", "C_W", "act", "method"))
def _one(key, index, x, widths, C_b, C_W, act, method):
    k = network_key(key, index)
    if method == "explicit":
        return _explicit_one(k, x, widths, C_b, C_W, act)
    G1 = input_kernel(x, C_b=C_b[0], C_W=C_W[0])
    return _conditional_one(k, G1, widths, C_b, C_W, get_activation(act).sigma)


@partial(jax.jit, static_argnames=("widths", "C_b", "C_W", "act", "method"))
def _batch(key, indices, x, widths, C_b, C_W, act, method):
    return jax.vmap(lambda i: _one(key, i, x, widths, C_b, C_W, act, method))(indices)


def ensemble_metrics(key, x, *, widths, C_b, C_W, activation="relu", n_nets: int, method="conditional",
                     chunk: int = 4096, progress: bool | None = None):
    r"""Conditional metrics and outputs of ``n_nets`` networks (networks ``0..n_nets-1`` of ``key``).

    Runs in chunks of ``chunk`` networks (``vmap`` inside a chunk) with a progress bar.

    Returns:
      ``(Ghat, z)`` with shapes ``(n_nets, L, N, N)`` and ``(n_nets, N, n_L)``.
    """
    from ._progress import progress_range

    fn = "ensemble_metrics"
    x, widths, Cb, Cw, act = _validate(fn, x, widths, C_b, C_W, activation, method)
    _checks.positive_int(fn, n_nets=n_nets, chunk=chunk)
    Gs, zs = [], []
    for start in progress_range(0, n_nets, chunk, desc=f"{act.name} ensemble ({method})", enable=progress):
        idx = jnp.arange(start, min(start + chunk, n_nets))
        G, z = _batch(key, idx, x, widths, Cb, Cw, act.name, method)
        Gs.append(G)
        zs.append(z)
    return jnp.concatenate(Gs), jnp.concatenate(zs)
