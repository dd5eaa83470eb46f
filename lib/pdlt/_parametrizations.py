r"""Parametrizations SP, NTK, muP and Depth-muP: initialization variances and per-layer SGD learning rates.

Networks here are bias-free, with weights used directly in the forward pass (the multipliers of the
"abc" form are folded into the initialization variance and the learning rate, which is equivalent
for SGD, not for Adam). With fan-in :math:`n_{\ell-1}`, hidden width n and base width :math:`n_b`
(all four coincide with SP at :math:`n = n_b`):

============  ===========================  =========================================================
name          init variance of W           SGD learning rate :math:`\eta_\ell/\eta`
============  ===========================  =========================================================
SP            :math:`C_W/n_{\ell-1}`        1
NTK           :math:`C_W/n_{\ell-1}`        :math:`n_b/n_{\ell-1}` (PDLT's :math:`\lambda_W/n_{\ell-1}`, §7-8)
muP           in/hidden :math:`C_W/n_{\ell-1}`, input :math:`n/n_b`, hidden 1, output :math:`n_b/n`
              output :math:`C_W n_b/n^2`
Depth-muP     as muP, residual blocks      as muP (SGD: no depth factor)
              multiplied by :math:`L^{-1/2}`
============  ===========================  =========================================================

muP follows Yang & Hu (arXiv 2011.14522, "maximal update"); Depth-muP the block multiplier
:math:`a/\sqrt L` with an L-independent SGD rate of Yang, Yu, Zhu & Hayou (arXiv 2310.02244) and
Bordelon et al. (arXiv 2309.16620). After one SGD step the hidden features move by
:math:`\Theta(n^{1/2})` (SP at fixed eta), :math:`\Theta(n^{-1/2})` (NTK) and :math:`\Theta(1)` (muP).

Networks: an MLP :math:`h^{(1)} = W^{(1)}x`, :math:`h^{(\ell+1)} = W^{(\ell+1)}\sigma(h^{(\ell)})`,
:math:`f = W^{(\rm out)}\sigma(h^{(H+1)})`, or a residual stream :math:`h^{(\ell+1)} = h^{(\ell)} +
m\,W^{(\ell+1)}\sigma(h^{(\ell)})` with branch multiplier m. Loss :math:`\tfrac12\,\mathrm{mean}(f-y)^2`.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._activations import get_activation

__all__ = ["PARAMETRIZATIONS", "Parametrization", "parametrization", "init_params", "forward",
           "sgd_step", "feature_change", "train_losses", "teacher_data"]

PARAMETRIZATIONS = ("SP", "NTK", "muP", "depth-muP")


class Parametrization(NamedTuple):
    """Per-layer initialization variances and learning-rate multipliers (hashable; static under jit).

    Attributes: name; n0, n, n_out: input, hidden and output widths; hidden: number of n x n matrices
    (MLP) or residual blocks; residual: stream with skip connections; branch: block multiplier m;
    var, lr: triples (input, every hidden layer, output).
    """

    name: str
    n0: int
    n: int
    n_out: int
    hidden: int
    residual: bool
    branch: float
    var: tuple
    lr: tuple


def parametrization(name: str, *, n0: int, n: int, n_out: int = 1, hidden: int = 2, base_width: int = 64,
                    C_W: float = 1.0, residual: bool = False, alpha: float | None = None) -> Parametrization:
    """Build a :class:`Parametrization` (validated before anything is computed).

    Args:
      name: one of ``PARAMETRIZATIONS``.
      n0, n, n_out: widths; hidden: number of hidden n x n layers (or residual blocks), >= 1.
      base_width: the width at which every parametrization equals SP.
      C_W: weight variance constant. residual: residual stream (forced True for depth-muP).
      alpha: branch exponent, multiplier ``hidden**-alpha`` (default 1/2 for depth-muP, 0 otherwise).
    Raises:
      PDLTValueError on an unknown name or a bad value.
    """
    fn = "parametrization"
    _checks.one_of(fn, "name", name, PARAMETRIZATIONS)
    _checks.positive_int(fn, n0=n0, n=n, n_out=n_out, hidden=hidden, base_width=base_width)
    _checks.positive(fn, C_W=C_W)
    if alpha is not None:
        _checks.nonnegative(fn, alpha=alpha)
    if name == "depth-muP":
        residual = True
        alpha = 0.5 if alpha is None else alpha
    alpha = 0.0 if alpha is None else float(alpha)
    fans = [n0, n, n]                                  # input, hidden, output layers
    var = [C_W / f for f in fans]
    if name == "SP":
        lr = [1.0, 1.0, 1.0]
    elif name == "NTK":
        lr = [base_width / f for f in fans]
    else:  # muP and depth-muP
        var[-1] = C_W * base_width / n**2
        lr = [n / base_width, 1.0, base_width / n]
    return Parametrization(name, n0, n, n_out, hidden, bool(residual), float(hidden) ** (-alpha),
                           tuple(var), tuple(lr))


def init_params(key, p: Parametrization, dtype=None):
    """Weights ``(W_in (n, n0), W_hidden (H, n, n), W_out (n_out, n))`` with the variances of ``p``."""
    dtype = dtype or jnp.result_type(float)
    shapes = [(p.n, p.n0), (p.hidden, p.n, p.n), (p.n_out, p.n)]
    keys = jax.random.split(key, 3)
    return tuple(jax.random.normal(k, s, dtype) * jnp.sqrt(jnp.asarray(v, dtype)) for k, s, v in zip(keys, shapes, p.var))


def forward(params, x, p: Parametrization, activation="relu"):
    r"""Hidden preactivations and output. Args: x ``(B, n0)``.

    Returns:
      ``(hs, f)``: hs ``(H + 1, B, n)`` (h^(1) .. h^(H+1)), f ``(B, n_out)``.
    """
    sigma = get_activation(activation, "forward").sigma
    h0 = x @ params[0].T

    def layer(h, W):
        h = h + p.branch * (sigma(h) @ W.T) if p.residual else sigma(h) @ W.T
        return h, h

    h, hs = jax.lax.scan(layer, h0, params[1])
    return jnp.concatenate([h0[None], hs]), sigma(h) @ params[2].T


def _split(p: Parametrization, dtype):
    """A parametrization as (static skeleton: name and shapes only, traced coefficients), so that one
    compiled program serves SP, NTK, muP and Depth-muP at the same widths."""
    skel = p._replace(name="", branch=0.0, var=(0.0,) * len(p.var), lr=(0.0,) * len(p.lr))
    return skel, jnp.asarray((*p.var, *p.lr, p.branch), dtype)


def _join(skel: Parametrization, coef) -> Parametrization:
    k = len(skel.var)
    return skel._replace(var=tuple(coef[:k]), lr=tuple(coef[k:2 * k]), branch=coef[2 * k])


def _loss(params, x, y, p, activation):
    return 0.5 * jnp.mean(jnp.sum((forward(params, x, p, activation)[1] - y) ** 2, axis=-1))


def sgd_step(params, x, y, p: Parametrization, eta, activation="relu"):
    r"""One SGD step :math:`W_\ell \leftarrow W_\ell - \eta\,\mathrm{lr}_\ell\,\partial\mathcal L/\partial W_\ell`."""
    grads = jax.grad(_loss)(params, x, y, p, activation)
    return tuple(W - eta * m * g for W, g, m in zip(params, grads, p.lr))


def feature_change(key, p: Parametrization, x, y, *, eta: float, activation="relu", steps: int = 1,
                   n_seeds: int = 1):
    r"""Per-coordinate RMS change of each hidden layer, of the residual increment and of the output
    after ``steps`` SGD steps (the "coordinate check"):
    :math:`\Delta_\ell = \big[\tfrac{1}{Bn}\sum (h^{(\ell)}_{\rm after} - h^{(\ell)}_{\rm before})^2\big]^{1/2}`
    on the training batch.

    Args:
      key: initializations ``fold_in(key, s)``, s < n_seeds; p; x ``(B, n0)``; y ``(B, n_out)``;
      eta > 0; activation; steps >= 1.
    Returns:
      array ``(n_seeds, H + 3)``: the H+1 hidden layers, the increment
      :math:`h^{(H+1)} - h^{(1)}` (what the blocks add), then the output.
    """
    fn = "feature_change"
    if not isinstance(p, Parametrization):
        raise _checks.PDLTValueError(f"{fn}: `p` must come from pdlt.parametrization(...), got {p!r}")
    _checks.positive(fn, eta=eta)
    _checks.positive_int(fn, steps=steps)
    _checks.positive_int(fn, n_seeds=n_seeds)
    get_activation(activation, fn)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    y = jnp.asarray(y, dtype=x.dtype)
    skel, coef = _split(p, x.dtype)
    return _feature_change(key, jnp.arange(n_seeds), skel, coef, x, y, float(eta), activation, steps)


@partial(jax.jit, static_argnames=("skel", "activation", "steps"))
def _feature_change(key, seeds, skel, coef, x, y, eta, activation, steps):
    p = _join(skel, coef)

    def one(s):
        params = init_params(jax.random.fold_in(key, s), p, x.dtype)
        hs0, f0 = forward(params, x, p, activation)
        for _ in range(steps):
            params = sgd_step(params, x, y, p, eta, activation)
        hs1, f1 = forward(params, x, p, activation)
        d = hs1 - hs0
        per_layer = jnp.sqrt(jnp.mean(d**2, axis=(1, 2)))
        incr = jnp.sqrt(jnp.mean((d[-1] - d[0]) ** 2))
        return jnp.concatenate([per_layer, incr[None], jnp.sqrt(jnp.mean((f1 - f0) ** 2))[None]])

    return jax.vmap(one)(seeds)


def train_losses(key, p: Parametrization, x, y, *, etas, steps: int, activation="relu"):
    """Full-batch SGD from one initialization for each learning rate in ``etas``; training loss per step.

    Returns:
      array ``(len(etas), steps + 1)`` (entry 0 is the initial loss); a diverged run gives inf/nan.
    """
    fn = "train_losses"
    if not isinstance(p, Parametrization):
        raise _checks.PDLTValueError(f"{fn}: `p` must come from pdlt.parametrization(...), got {p!r}")
    etas = np.asarray(etas, dtype=float)
    if etas.ndim != 1 or etas.size == 0 or np.any(etas <= 0):
        raise _checks.PDLTValueError(f"{fn}: `etas` must be a non-empty 1-D array of positive rates")
    _checks.positive_int(fn, steps=steps)
    get_activation(activation, fn)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    y = jnp.asarray(y, dtype=x.dtype)
    skel, coef = _split(p, x.dtype)
    return _train(key, skel, coef, x, y, jnp.asarray(etas, x.dtype), steps, activation)


@partial(jax.jit, static_argnames=("skel", "steps", "activation"))
def _train(key, skel, coef, x, y, etas, steps, activation):
    p = _join(skel, coef)
    params0 = init_params(key, p, x.dtype)

    def run(eta):
        def step(params, _):
            new = sgd_step(params, x, y, p, eta, activation)
            return new, _loss(new, x, y, p, activation)

        _, losses = jax.lax.scan(step, params0, None, length=steps)
        return jnp.concatenate([_loss(params0, x, y, p, activation)[None], losses])

    return jax.vmap(run)(etas)


def teacher_data(key, n_samples: int, n0: int, *, width: int = 32, activation="tanh"):
    r"""A synthetic regression task: x ~ N(0, I_{n0}), y = a random one-hidden-layer teacher network,
    standardized to unit variance. Returns ``(x (n_samples, n0), y (n_samples, 1))``."""
    fn = "teacher_data"
    _checks.positive_int(fn, n_samples=n_samples, n0=n0, width=width)
    sigma = get_activation(activation, fn).sigma
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (n_samples, n0))
    W = jax.random.normal(k2, (width, n0)) * np.sqrt(2.0 / n0)
    a = jax.random.normal(k3, (1, width)) / np.sqrt(width)
    y = sigma(x @ W.T) @ a.T
    return x, (y - jnp.mean(y)) / jnp.std(y)
