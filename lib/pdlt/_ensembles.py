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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._activations import get_activation
from ._gaussian import psd_factor
from ._kernel import input_kernel
from ._mlp import init_mlp, mlp_preactivations, network_key
from ._netmap import network_map

__all__ = ["METHODS", "sample_network_metrics", "ensemble_metrics", "EnsembleMoments", "ensemble_moments",
           "warn_nonfinite", "READOUTS", "readout_ensemble"]

METHODS = ("conditional", "explicit")


_psd_sqrt_factor = psd_factor  # (kept name) R R^T = G, Cholesky with a tiny relative jitter


def _conditional_one(key, G1, widths, C_b, C_W, sigma):
    """One network by the conditional sampler; C_b, C_W are length-L arrays (traced).

    When the hidden widths n_1..n_{L-1} are equal the layers run in a ``lax.scan`` (one compiled
    layer body; the same draws as the unrolled loop: layer ell uses ``split(key, L)[ell]``).
    """
    L = len(widths)
    keys = jax.random.split(key, L)
    N = G1.shape[0]

    def layer(G, k, n, cb, cw):
        z = psd_factor(G) @ jax.random.normal(k, (N, n), G.dtype)   # z^(ell+1): (N, n)
        s = sigma(z)
        return cb + cw * (s @ s.T) / n

    if L >= 2 and len(set(widths[:-1])) == 1:
        n = widths[0]
        G, Gs = jax.lax.scan(lambda G, inp: (lambda Gn: (Gn, Gn))(layer(G, inp[0], n, inp[1], inp[2])),
                             G1, (keys[: L - 1], C_b[1:], C_W[1:]))
        Gs = jnp.concatenate([G1[None], Gs])
    else:
        G, out = G1, [G1]
        for ell in range(L - 1):
            G = layer(G, keys[ell], widths[ell], C_b[ell + 1], C_W[ell + 1])
            out.append(G)
        Gs = jnp.stack(out)
    z = psd_factor(G) @ jax.random.normal(keys[L - 1], (N, widths[-1]), G.dtype)
    return Gs, z


def _explicit_one(key, x, widths, C_b, C_W, act):
    params = init_mlp(key, x.shape[1], widths, C_b=C_b, C_W=C_W, dtype=x.dtype)
    zs = mlp_preactivations(params, x, act)
    sigma = get_activation(act).sigma
    Gs = [C_b[0] + C_W[0] * (x @ x.T) / x.shape[1]]
    for ell in range(len(widths) - 1):
        s = sigma(zs[ell])
        Gs.append(C_b[ell + 1] + C_W[ell + 1] * (s @ s.T) / widths[ell])
    return jnp.stack(Gs), zs[-1]


def _validate(fn, x, widths, C_b, C_W, activation, method, key=None):
    if key is not None:
        _checks.prng_key(fn, "key", key)
    _checks.finite(fn, x=x)
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim != 2:
        raise _checks.PDLTValueError(f"{fn}: `x` must have shape (N, n0), got {x.shape}")
    widths = _checks.widths(fn, "widths", widths)
    L = len(widths)
    Cb, Cw = _checks.per_layer_variances(fn, C_b=C_b, C_W=C_W, L=L)
    act = get_activation(activation, fn)
    _checks.one_of(fn, "method", method, METHODS)
    return x, widths, Cb, Cw, act


@_checks.warns_nonfinite("metrics")
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
    x, widths, Cb, Cw, act = _validate(fn, x, widths, C_b, C_W, activation, method, key)
    return _one(key, index, x, widths, Cb, Cw, act.name, method)


@partial(jax.jit, static_argnames=("widths", "C_b", "C_W", "act", "method"))
def _one(key, index, x, widths, C_b, C_W, act, method):
    k = network_key(key, index)
    if method == "explicit":
        return _explicit_one(k, x, widths, C_b, C_W, act)
    G1 = input_kernel(x, C_b=C_b[0], C_W=C_W[0])
    return _conditional_one(k, G1, widths, jnp.asarray(C_b, x.dtype), jnp.asarray(C_W, x.dtype),
                            get_activation(act).sigma)


@partial(jax.jit, static_argnames=("widths", "act"))
def _batch_conditional(key, indices, x, widths, C_b, C_W, act):
    """Conditional sampler with traced (C_b, C_W) arrays: one compilation serves every initialization."""
    sigma = get_activation(act).sigma

    def one(i):
        G1 = C_b[0] + C_W[0] * (x @ x.T) / x.shape[1]
        return _conditional_one(network_key(key, i), G1, widths, C_b, C_W, sigma)

    return network_map(one, indices)


def _padded_batch(key, start, chunk, n_nets, x, widths, Cb, Cw, act, method):
    """Networks start..min(start+chunk, n_nets)-1. A short final chunk is padded to the full chunk
    size and cut back, so every chunk has one shape (one compilation); network i depends only on i."""
    size = min(chunk, n_nets)
    G, z = _run_batch(key, jnp.arange(start, start + size), x, widths, Cb, Cw, act, method)
    stop = min(start + size, n_nets) - start
    return G[:stop], z[:stop]


def _run_batch(key, idx, x, widths, Cb, Cw, act, method):
    if method == "conditional":
        return _batch_conditional(key, idx, x, widths, jnp.asarray(Cb, x.dtype), jnp.asarray(Cw, x.dtype), act)
    return _batch(key, idx, x, widths, Cb, Cw, act, method)


@partial(jax.jit, static_argnames=("widths", "C_b", "C_W", "act", "method"))
def _batch(key, indices, x, widths, C_b, C_W, act, method):
    return network_map(lambda i: _one(key, i, x, widths, C_b, C_W, act, method), indices)


def ensemble_metrics(key, x, *, widths, C_b, C_W, activation="relu", n_nets: int, method="conditional",
                     chunk: int = 4096, progress: bool | None = None):
    r"""Conditional metrics and outputs of ``n_nets`` networks (networks ``0..n_nets-1`` of ``key``).

    Runs in chunks of ``chunk`` networks (``vmap`` inside a chunk) with a progress bar.

    Returns:
      ``(Ghat, z)`` with shapes ``(n_nets, L, N, N)`` and ``(n_nets, N, n_L)``.
    """
    from ._progress import even_chunk, progress_range

    fn = "ensemble_metrics"
    x, widths, Cb, Cw, act = _validate(fn, x, widths, C_b, C_W, activation, method, key)
    _checks.positive_int(fn, n_nets=n_nets, chunk=chunk)
    chunk = even_chunk(n_nets, chunk)
    Gs, zs = [], []
    for start in progress_range(0, n_nets, chunk, desc=f"{act.name} ensemble ({method})", enable=progress):
        G, z = _padded_batch(key, start, chunk, n_nets, x, widths, Cb, Cw, act.name, method)
        warn_nonfinite(fn, G)
        Gs.append(G)
        zs.append(z)
    return jnp.concatenate(Gs), jnp.concatenate(zs)


def warn_nonfinite(fn: str, values) -> bool:
    """Warn (once per call) if ``values`` holds inf/NaN: overflow in the chaotic phase, or float32 range
    (:func:`pdlt._checks.warn_nonfinite`, the one helper of recursions and samplers).

    Returns True if a non-finite value was found.
    """
    return _checks.warn_nonfinite(fn, values, "metrics")


class EnsembleMoments(NamedTuple):
    r"""Streaming moments of the conditional metrics :math:`\hat G^{(\ell)}_{ab}` over an ensemble.

    All arrays have a leading layer axis L and the inputs' N x N shape after it.

    Attributes:
      n_nets: number of networks S.
      mean, mean_se: :math:`E[\hat G]` and its standard error, ``(L, N, N)``.
      var, var_se: :math:`\mathrm{Var}(\hat G_{ab})` (unbiased) and its delta-method SE (from the fourth
        central moment), ``(L, N, N)``.
      cov, cov_se: :math:`\mathrm{Cov}(\hat G_{ab}, \hat G_{cd})`, ``(L, N, N, N, N)``, and its SE.
      raw, raw_se: :math:`E[\hat G^m]` for m = 1..order, ``(order, L, N, N)``, and SEs.
    """

    n_nets: int
    mean: np.ndarray
    mean_se: np.ndarray
    var: np.ndarray
    var_se: np.ndarray
    cov: np.ndarray
    cov_se: np.ndarray
    raw: np.ndarray
    raw_se: np.ndarray


@np.errstate(all="ignore")  # non-finite chunks were already reported by warn_nonfinite
def _chunk_sums(G, shift, order):
    """Power sums of one chunk, accumulated in float64 numpy (the chunk itself may be float32)."""
    G = np.asarray(G, dtype=np.float64)
    S, L, N, _ = G.shape
    d = (G - shift).reshape(S, L, N * N)
    pq = d[:, :, :, None] * d[:, :, None, :]
    out = {"d1": d.sum(0), "d2": (d**2).sum(0), "d3": (d**3).sum(0), "d4": (d**4).sum(0),
           "pq": pq.sum(0), "pq2": (pq**2).sum(0), "p21": (pq * d[:, :, :, None]).sum(0)}
    P = G.reshape(S, L, N * N)
    for m in range(1, 2 * order + 1):
        out[f"p{m}"] = (P**m).sum(0)
    return out


def ensemble_moments(key, x, *, widths, C_b, C_W, activation="relu", n_nets: int, method="conditional",
                     chunk: int = 4096, order: int = 3, progress: bool | None = None, checkpoint=None,
                     checkpoint_every: int = 8) -> EnsembleMoments:
    r"""Moments of :math:`\hat G^{(\ell)}` over ``n_nets`` networks, streamed in chunks (PDLT §4.1-§4.3).

    Only float64 power sums are kept between chunks (never the whole ensemble), so ensembles far
    larger than memory run; networks are those of :func:`ensemble_metrics` (network i uses
    ``fold_in(key, i)``), so any chunk size gives the same numbers up to rounding. The variance is
    the low-variance (conditional) estimator of the four-point vertex: :math:`V^{(\ell)} \approx
    n_{\ell-1}\mathrm{Var}(\hat G^{(\ell)})`, and the output moments follow from
    :math:`E[z^{2m}] = (2m-1)!!E[\hat G^m]` without sampling z.

    Long ensembles: with ``checkpoint`` (a file path) the power sums are saved atomically every
    ``checkpoint_every`` chunks and on interruption; the same call resumes from there and returns
    bitwise the numbers of an uninterrupted run (the mechanism of :func:`pdlt.ensembles.ensemble_reduce`);
    a checkpoint of another computation is refused.

    Args:
      as :func:`ensemble_metrics`, plus ``order``: highest raw moment :math:`E[\hat G^m]` (its SE needs
      the 2m-th power sum), ``checkpoint``, ``checkpoint_every``.
    Returns:
      :class:`EnsembleMoments` (numpy float64 arrays).
    Warns: RuntimeWarning naming float64 if any metric overflows (see :func:`warn_nonfinite`).
    """
    from ._progress import even_chunk, progress_bar
    from ._sharding import _digest, resumable_chunks

    fn = "ensemble_moments"
    x, widths, Cb, Cw, act = _validate(fn, x, widths, C_b, C_W, activation, method, key)
    _checks.positive_int(fn, n_nets=n_nets, chunk=chunk, order=order, checkpoint_every=checkpoint_every)
    if n_nets < 2:
        raise _checks.PDLTValueError(f"{fn}: `n_nets` must be >= 2 for a variance, got {n_nets}")
    chunk = even_chunk(n_nets, chunk)
    starts = range(0, n_nets, chunk)

    def step(c, acc):
        G, _ = _padded_batch(key, starts[c], chunk, n_nets, x, widths, Cb, Cw, act.name, method)
        warn_nonfinite(fn, G)
        shift = np.asarray(jnp.mean(G, axis=0), np.float64).reshape(1, *G.shape[1:]) if acc is None else acc[0]
        sums = _chunk_sums(G, shift, order)
        return (shift, sums if acc is None else {k: acc[1][k] + v for k, v in sums.items()}), G.shape[0]

    def bar(first):
        return progress_bar(n_nets, desc=f"{act.name} moments ({method})", initial=min(first * chunk, n_nets),
                            enable=progress if progress is not None else (None if len(starts) > 1 else False))

    fp = None if checkpoint is None else _digest(key, x, fn, n_nets, chunk, widths, Cb, Cw, act.name, method,
                                                 order, str(x.dtype))
    shift, acc = resumable_chunks(fn, len(starts), step, checkpoint=checkpoint, fingerprint=fp,
                                  every=checkpoint_every, bar=bar)
    with np.errstate(all="ignore"):
        return _finish_moments(acc, shift, float(n_nets), len(widths), x.shape[0], order, n_nets)


def _finish_moments(acc, shift, S, L, N, order, n_nets):
    """Means, variances, covariances and raw moments (with SEs) from the accumulated power sums."""
    c = shift.reshape(L, N * N)
    m1 = acc["d1"] / S
    mean = c + m1
    # central moments about the sample mean from the shifted power sums
    c2 = acc["d2"] / S - m1**2
    c4 = acc["d4"] / S - 4 * m1 * acc["d3"] / S + 6 * m1**2 * acc["d2"] / S - 3 * m1**4
    var = c2 * S / (S - 1)
    var_se = np.sqrt(np.maximum(c4 - c2**2, 0.0) / S)
    cpq = acc["pq"] / S - m1[:, :, None] * m1[:, None, :]
    cov = cpq * S / (S - 1)
    # SE of the covariance: the spread of the products p = (G_a - mean_a)(G_b - mean_b) about the
    # *sample* means (as pdlt.covariance_and_se), expanded in the power sums about the shift c
    # (d = G - c, mu = mean(d)): E[p^2] = E[d_a^2 d_b^2] - 2 mu_b E[d_a^2 d_b] - 2 mu_a E[d_a d_b^2]
    # + mu_b^2 E[d_a^2] + mu_a^2 E[d_b^2] + 4 mu_a mu_b E[d_a d_b] - 3 mu_a^2 mu_b^2, so that the SE does
    # not depend on the shift (hence not on the chunk size).
    ma, mb = m1[:, :, None], m1[:, None, :]
    p21 = acc["p21"] / S                     # E[d_a^2 d_b], (L, a, b)
    e_p2 = (acc["pq2"] / S - 2 * mb * p21 - 2 * ma * np.swapaxes(p21, 1, 2)
            + mb**2 * (acc["d2"] / S)[:, :, None] + ma**2 * (acc["d2"] / S)[:, None, :]
            + 4 * ma * mb * acc["pq"] / S - 3 * ma**2 * mb**2)
    cov_se = np.sqrt(np.maximum(e_p2 - cpq**2, 0.0) / (S - 1))
    raw = np.stack([acc[f"p{m}"] / S for m in range(1, order + 1)])
    raw_se = np.stack([np.sqrt(np.maximum(acc[f"p{2 * m}"] / S - (acc[f"p{m}"] / S) ** 2, 0.0) / S)
                       for m in range(1, order + 1)])
    sh = (L, N, N)
    return EnsembleMoments(
        n_nets, mean.reshape(sh), np.sqrt(c2 / S).reshape(sh), var.reshape(sh), var_se.reshape(sh),
        cov.reshape(L, N, N, N, N), cov_se.reshape(L, N, N, N, N),
        raw.reshape(order, *sh), raw_se.reshape(order, *sh))


#: readout-weight distributions of :func:`readout_ensemble` (all with variance C_W / n).
READOUTS = ("gaussian", "rademacher", "uniform")


def _readout_one(key, x, n, C_b, C_W, sigma):
    k1, k2, k3, k4, k5, k6 = jax.random.split(key, 6)
    n0, dt = x.shape[1], x.dtype
    W = jax.random.normal(k1, (n, n0), dt) * jnp.sqrt(C_W / n0)
    b = jax.random.normal(k2, (n,), dt) * jnp.sqrt(C_b)
    h = sigma(x @ W.T + b)                                            # (N, n)
    v = jnp.stack([jax.random.normal(k3, (n,), dt),
                   jax.random.rademacher(k4, (n,), dt),
                   jax.random.uniform(k5, (n,), dt, -jnp.sqrt(3.0), jnp.sqrt(3.0))])  # unit variance
    b2 = jax.random.normal(k6, (), dt) * jnp.sqrt(C_b)
    return b2 + jnp.sqrt(C_W / n) * v @ h.T                            # (3, N)


@partial(jax.jit, static_argnames=("n", "act"))
def _readout_batch(key, idx, x, n, C_b, C_W, act):
    sigma = get_activation(act).sigma
    return jax.vmap(lambda i: _readout_one(network_key(key, i), x, n, C_b, C_W, sigma))(idx)


def readout_ensemble(key, x, *, width: int, C_b: float, C_W: float, activation="relu", n_nets: int,
                     chunk: int = 65536, progress: bool | None = None) -> dict:
    r"""Outputs of one-hidden-layer networks whose readout weights are Gaussian, Rademacher or uniform
    (Antognini 2019; the hidden layer is the book's Gaussian initialization).

    :math:`f_a = b^{(2)} + \sum_{i=1}^{n} v_i\,\sigma(z^{(1)}_{i;a})` with :math:`E[v_i^2] = C_W/n`. The three
    readouts of network ``i`` share its hidden layer (key ``fold_in(key, i)``), so each readout's ensemble
    is exact but the three are correlated.

    Returns:
      dict readout name -> array ``(n_nets, N)``.
    """
    from ._progress import even_chunk, progress_range

    fn = "readout_ensemble"
    x, widths, Cb, Cw, act = _validate(fn, x, (width,), C_b, C_W, activation, "explicit", key)
    _checks.positive_int(fn, n_nets=n_nets, chunk=chunk)
    outs = []
    size = even_chunk(n_nets, chunk)
    for start in progress_range(0, n_nets, size, desc=f"{act.name} readouts", enable=progress):
        f = _readout_batch(key, jnp.arange(start, start + size), x, widths[0], Cb[0], Cw[0], act.name)
        outs.append(f[: min(start + size, n_nets) - start])
    f = jnp.concatenate(outs)
    warn_nonfinite(fn, f)
    return {r: f[:, k] for k, r in enumerate(READOUTS)}
