r"""Faster ensemble samplers with the same per-network contract as :func:`pdlt.ensemble_metrics` (PDLT §4.1-4.2).

Given layer :math:`\ell`, the preactivations of layer :math:`\ell+1` are iid over neurons with covariance

.. math:: \hat G^{(\ell+1)}_{ab} = C_b + \frac{C_W}{n_\ell}\sum_{j}\sigma(z^{(\ell)}_{j;a})\sigma(z^{(\ell)}_{j;b}),

so :math:`z^{(\ell+1)} = F g` with *any* factor :math:`F F^\top = \hat G^{(\ell+1)}` and standard normals
``g``. Two factors are exact:

* the Cholesky factor (``N x N``; what ``pdlt.ensemble_metrics(method="conditional")`` uses), costing
  ``N n_{ell+1}`` normals per layer;
* the *feature factor* :math:`F = [\sqrt{C_W/n_\ell}\,\sigma(z^{(\ell)}),\ \sqrt{C_b}\,\mathbf 1]`
  (``N x (n_ell+1)``), which is the explicit network itself and needs no jitter.

:func:`fast_ensemble_metrics` takes the Cholesky factor when ``N <= n_ell`` (fewer normals, full rank)
and the feature factor otherwise (``N`` inputs beyond the width: the Cholesky factor would be of a
rank-deficient matrix and cost more). Further options:

* ``rng="threefry"`` (default) draws exactly the normals of the reference implementation: with the
  Cholesky factor in float64 the per-network metrics equal ``ensemble_metrics`` to rounding;
* ``rng="splitmix"`` draws the normals from a counter-based SplitMix64 hash seeded by 64 threefry bits
  of the same per-layer key, through a float32 Box-Muller transform (about 3x faster than
  ``jax.random.normal`` on CPU). Same distribution, different numbers (a statistical, not bitwise,
  match); needs ``jax_enable_x64``;
* ``dtype=float32`` runs the matmuls in float32 (statistics are still accumulated in float64 by
  :func:`fast_ensemble_moments`);
* ``outputs=False`` skips the last layer's sample when only the metrics are needed.

:func:`fast_ensemble_moments` streams the ensemble (memory flat in ``n_nets``), returning the mean and
variance of every entry of :math:`\hat G^{(\ell)}` with standard errors, and optionally the covariance
of the entries (the four-point vertex at every layer). Both functions shard the ensemble axis over
all devices (:mod:`pdlt._sharding`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._activations import get_activation
from ._ensembles import METHODS, _validate
from ._mlp import network_key
from ._sharding import ensemble_map, ensemble_reduce, moments_from_sums

__all__ = ["RNGS", "splitmix_normal", "fast_network_metrics", "fast_ensemble_metrics", "fast_ensemble_moments"]

RNGS = ("threefry", "splitmix")
_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(z):
    z = (z ^ (z >> 30)) * jnp.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> 27)) * jnp.uint64(0x94D049BB133111EB)
    return z ^ (z >> 31)


def splitmix_normal(key, shape, dtype=jnp.float64):
    r"""Standard normals from a SplitMix64 counter hash seeded by ``key`` (float32 Box-Muller).

    Word ``c`` is :math:`\mathrm{mix64}(s + c\,\gamma)` with :math:`\gamma` the 64-bit golden ratio and
    ``s`` 64 threefry bits of ``key``; its halves give :math:`u_1 = (h+\tfrac12)2^{-32}` and
    :math:`u_2 = l\,2^{-32}` and the pair :math:`\sqrt{-2\ln u_1}(\cos 2\pi u_2, \sin 2\pi u_2)`
    (tails reach 6.7 sigma). Needs ``jax_enable_x64`` (64-bit integers).

    Args:
      key: a ``jax.random.key``. shape: output shape. dtype: output float dtype.
    Returns:
      array of ``shape``.
    """
    m = int(np.prod(shape))
    half = (m + 1) // 2
    seed = jax.random.bits(key, (), jnp.uint64)
    z = _mix64(seed + jnp.arange(half, dtype=jnp.uint64) * jnp.uint64(_GOLDEN))
    hi = (z >> 32).astype(jnp.uint32).astype(jnp.float32)
    lo = (z & jnp.uint64(0xFFFFFFFF)).astype(jnp.uint32).astype(jnp.float32)
    r = jnp.sqrt(-2.0 * jnp.log((hi + 0.5) * jnp.float32(2.0**-32)))
    th = jnp.float32(2 * np.pi * 2.0**-32) * lo
    g = jnp.concatenate([r * jnp.cos(th), r * jnp.sin(th)])[:m]
    return g.reshape(shape).astype(dtype)


def _normal(key, shape, dtype, rng):
    if rng == "splitmix":
        return splitmix_normal(key, shape, dtype)
    return jax.random.normal(key, shape, dtype)


def _factor(h, G, C_b, C_W):
    """A factor F with F F^T = G: Cholesky (as the reference) when N <= width of h, else the feature factor."""
    N, n = h.shape
    if N <= n:
        jitter = 1e-12 if G.dtype == jnp.float64 else 1e-6
        scale = jnp.maximum(jnp.trace(G) / N, jnp.finfo(G.dtype).tiny)
        return jnp.linalg.cholesky(G + jitter * scale * jnp.eye(N, dtype=G.dtype))
    F = jnp.sqrt(jnp.asarray(C_W / n, h.dtype)) * h
    if C_b > 0:
        F = jnp.concatenate([F, jnp.full((N, 1), np.sqrt(C_b), h.dtype)], axis=1)
    return F


def _conditional(key, x, widths, C_b, C_W, act, rng, outputs):
    sigma = get_activation(act).sigma
    L = len(widths)
    keys = jax.random.split(key, L)
    h = x
    G = C_b[0] + C_W[0] * (x @ x.T) / x.shape[1]
    Gs, z = [G], None
    for ell in range(L if outputs else L - 1):
        F = _factor(h, G, C_b[ell], C_W[ell])
        z = F @ _normal(keys[ell], (F.shape[1], widths[ell]), x.dtype, rng)
        if ell < L - 1:
            h = sigma(z)
            G = C_b[ell + 1] + C_W[ell + 1] * (h @ h.T) / widths[ell]
            Gs.append(G)
    return jnp.stack(Gs), z


def _explicit(key, x, widths, C_b, C_W, act, rng, outputs):
    sigma = get_activation(act).sigma
    L = len(widths)
    keys = jax.random.split(key, 2 * L)            # the layout of pdlt.init_mlp
    h, fan_in, dt = x, x.shape[1], x.dtype
    Gs, z = [C_b[0] + C_W[0] * (x @ x.T) / x.shape[1]], None
    for ell, n in enumerate(widths if outputs else widths[:-1]):
        W = _normal(keys[2 * ell], (n, fan_in), dt, rng) * jnp.sqrt(C_W[ell] / fan_in).astype(dt)
        b = _normal(keys[2 * ell + 1], (n,), dt, rng) * jnp.sqrt(C_b[ell]).astype(dt)
        z = h @ W.T + b
        if ell < L - 1:
            h = sigma(z)
            Gs.append(C_b[ell + 1] + C_W[ell + 1] * (h @ h.T) / n)
        fan_in = n
    return jnp.stack(Gs), z


def _one(key, index, x, *, widths, C_b, C_W, act, method, rng, outputs):
    k = network_key(key, index)
    f = _explicit if method == "explicit" else _conditional
    G, z = f(k, x, widths, C_b, C_W, act, rng, outputs)
    return (G, z) if outputs else G


def _prepare(fn, x, widths, C_b, C_W, activation, method, rng, dtype, key=None):
    _checks.float_dtype(fn, "dtype", dtype)
    x, widths, Cb, Cw, act = _validate(fn, x, widths, C_b, C_W, activation, method, key)
    _checks.one_of(fn, "rng", rng, RNGS)
    if rng == "splitmix" and not jax.config.jax_enable_x64:
        raise _checks.PDLTValueError(f"{fn}: rng='splitmix' needs jax_enable_x64 (64-bit integers)")
    if dtype is not None:
        x = x.astype(dtype)
    return x, tuple(widths), tuple(float(c) for c in Cb), tuple(float(c) for c in Cw), act.name


@_checks.warns_nonfinite("metrics")
def fast_network_metrics(key, index, x, *, widths, C_b, C_W, activation="relu", method="conditional",
                         rng="threefry", dtype=None, outputs=True):
    r"""Conditional metrics :math:`\hat G^{(1..L)}` (and output :math:`z^{(L)}`) of network ``index``.

    Same arguments and contract as :func:`pdlt.sample_network_metrics` (network ``index`` uses
    ``fold_in(key, index)``), plus ``rng``, ``dtype`` and ``outputs`` (see the module docstring).

    Returns:
      ``(Ghat (L, N, N), z (N, n_L))``, or ``Ghat`` alone with ``outputs=False``.
    Raises:
      PDLTValueError for bad widths, variances, activation, method or rng.
    """
    x, widths, Cb, Cw, act = _prepare("fast_network_metrics", x, widths, C_b, C_W, activation, method, rng, dtype, key)
    return jax.jit(_one, static_argnames=("widths", "C_b", "C_W", "act", "method", "rng", "outputs"))(
        key, index, x, widths=widths, C_b=Cb, C_W=Cw, act=act, method=method, rng=rng, outputs=outputs)


def fast_ensemble_metrics(key, x, *, widths, C_b, C_W, activation="relu", n_nets: int, method="conditional",
                          rng="threefry", dtype=None, outputs=True, chunk: int = 4096, mesh=None,
                          progress: bool | None = None):
    r"""Per-network conditional metrics of networks ``0..n_nets-1``, sharded over all devices.

    Args:
      as :func:`pdlt.ensemble_metrics`, plus ``rng`` (``"threefry"`` | ``"splitmix"``), ``dtype``
      (compute dtype, default that of ``x`` in float64 mode), ``outputs`` and ``mesh``
      (:func:`pdlt.ensemble_mesh`; default all devices).
    Returns:
      ``(Ghat, z)`` of shapes ``(n_nets, L, N, N)`` and ``(n_nets, N, n_L)`` (NumPy), or ``Ghat`` alone
      with ``outputs=False``.
    Raises:
      PDLTValueError naming the bad argument, before any compute.
    """
    fn = "fast_ensemble_metrics"
    x, widths, Cb, Cw, act = _prepare(fn, x, widths, C_b, C_W, activation, method, rng, dtype, key)
    _checks.positive_int(fn, n_nets=n_nets, chunk=chunk)
    static = (("widths", widths), ("C_b", Cb), ("C_W", Cw), ("act", act), ("method", method),
              ("rng", rng), ("outputs", outputs))
    out = ensemble_map(_one, key, n_nets, (x,), static=static, chunk=chunk, mesh=mesh, progress=progress,
                       desc=f"{act} ensemble ({method}, {rng})")
    _checks.warn_nonfinite(fn, out, "metrics")
    return out


def _upper_entries(G):
    """The upper-triangle entries ``G[..., a, b]`` (``a <= b``) of each layer, flattened: ``(m, L * P)``."""
    N = G.shape[-1]
    a, b = np.triu_indices(N)
    return G[..., a, b].reshape(G.shape[0], -1)


def fast_ensemble_moments(key, x, *, widths, C_b, C_W, activation="relu", n_nets: int, method="conditional",
                     rng="threefry", dtype=None, vertex: bool = False, chunk: int = 4096, mesh=None,
                     progress: bool | None = None, checkpoint=None, checkpoint_every: int = 8):
    r"""Streaming ensemble mean and variance of :math:`\hat G^{(\ell)}_{ab}` (memory flat in ``n_nets``).

    The estimates are those of :func:`pdlt.mean_and_se` / :func:`pdlt.variance_and_se` applied to the
    ``(n_nets, L, N, N)`` metrics of :func:`fast_ensemble_metrics`, without ever holding them: only
    ``chunk`` networks are in memory at a time. With ``vertex=True`` also the covariance
    :math:`\mathrm{Cov}[\hat G^{(\ell)}_{a_1a_2}, \hat G^{(\ell)}_{a_3a_4}]` of all pairs ``a1 <= a2``
    (the four-point vertex at every layer, up to the normalisation of PDLT eq. (4.x)).

    Returns:
      dict with ``mean``, ``mean_se``, ``var``, ``var_se`` of shape ``(L, N, N)``, ``n``, and with
      ``vertex`` a ``cov`` of shape ``(L, P, P)``, ``P = N(N+1)/2``, ordered as ``numpy.triu_indices(N)``.
    Long ensembles: with ``checkpoint`` (a file path) the streamed sums are saved atomically every
    ``checkpoint_every`` chunks and on interruption; the same call resumes from there and returns
    bitwise the numbers of an uninterrupted run (:func:`pdlt.ensemble_reduce`). The progress bar shows
    networks done, the rate and the time left.
    Raises:
      PDLTValueError naming the bad argument, before any compute.
    """
    fn = "fast_ensemble_moments"
    x, widths, Cb, Cw, act = _prepare(fn, x, widths, C_b, C_W, activation, method, rng, dtype, key)
    _checks.positive_int(fn, n_nets=n_nets, chunk=chunk)
    if n_nets < 2:
        raise _checks.PDLTValueError(f"{fn}: `n_nets` must be >= 2 for a variance, got {n_nets}")
    static = (("widths", widths), ("C_b", Cb), ("C_W", Cw), ("act", act), ("method", method),
              ("rng", rng), ("outputs", False))
    r = ensemble_reduce(_one, key, n_nets, (x,), static=static, chunk=chunk, mesh=mesh,
                        cross=_upper_entries if vertex else None, progress=progress,
                        desc=f"{act} moments ({method}, {rng})", checkpoint=checkpoint,
                        checkpoint_every=checkpoint_every)
    out = moments_from_sums(r["n"], r["shift"], r["sums"])
    _checks.warn_nonfinite(fn, out["mean"], "metrics")
    out["n"] = n_nets
    if vertex:
        L, N = len(widths), x.shape[0]
        P = N * (N + 1) // 2
        s1 = r["sums"]["S1"][:, *np.triu_indices(N)].reshape(-1)
        cov = (r["cross"] - np.outer(s1, s1) / n_nets) / (n_nets - 1)
        out["cov"] = np.stack([cov[ell * P:(ell + 1) * P, ell * P:(ell + 1) * P] for ell in range(L)])
    return out
