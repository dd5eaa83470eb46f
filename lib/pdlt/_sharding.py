r"""The ensemble axis sharded across devices and hosts, in chunks (one code path for 1 CPU .. many GPUs).

An ensemble of networks is embarrassingly parallel: network ``i`` depends only on its key
``fold_in(key, i)`` (:func:`pdlt.network_key`). This module evaluates a per-network function
``fn(key, index, *operands, **static)`` for ``index = 0..n_nets-1`` with the network axis laid out
over a one-dimensional device mesh (``jax.sharding.Mesh`` with the axis ``"nets"``):

* :func:`ensemble_mesh`: all devices of all processes (or the ones given) as a mesh;
* :func:`ensemble_map`: every network's output, gathered on the host, in chunks;
* :func:`ensemble_reduce`: streaming shifted power sums over the ensemble (memory flat in ``n_nets``):
  per chunk only ``chunk`` networks live in memory, and each device reduces its own shard before
  XLA's cross-device sum.

Since network ``i`` draws the same random numbers wherever it runs, a sharded run reproduces the
single-device per-network samples, and reductions agree with the single-device ones to float64
rounding (the summation order differs).

Multi-host: call ``jax.distributed.initialize()`` in every process first; ``jax.devices()`` then
lists the devices of all processes and the same code runs unchanged (each process computes the
shards it holds; :func:`ensemble_map` all-gathers the outputs to every process).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from . import _checks
from ._netmap import CPU_MICRO_BATCH, micro_batched, network_map

__all__ = ["AXIS", "ensemble_mesh", "ensemble_map", "ensemble_reduce", "moments_from_sums", "max_networks"]

AXIS = "nets"


def ensemble_mesh(devices=None) -> Mesh:
    """A one-dimensional mesh (axis ``"nets"``) over ``devices`` (default: all devices of all processes)."""
    devs = jax.devices() if devices is None else list(devices)
    if not devs:
        raise _checks.PDLTValueError("ensemble_mesh: `devices` is empty")
    return Mesh(np.array(devs), (AXIS,))


def _chunks(n_nets, chunk, ndev):
    """(start, size, padded size) of each chunk of the streamed reductions: chunks of ``chunk`` networks
    (the last one shorter); padded sizes are multiples of the device count. The order of the sums
    follows this plan, so it is kept as it is."""
    chunk = -(-chunk // ndev) * ndev
    for start in range(0, n_nets, chunk):
        m = min(chunk, n_nets - start)
        yield start, m, -(-m // ndev) * ndev


def _even_chunks(n_nets, chunk, ndev):
    """(start, size, padded size) of each chunk of :func:`ensemble_map`: as few chunks of at most ``chunk``
    networks as possible, all of one padded size (one compilation; a multiple of the device count), the
    last padded with networks beyond ``n_nets`` that are dropped. Per-network outputs do not depend on it."""
    from ._progress import even_chunk

    size = -(-even_chunk(n_nets, chunk) // ndev) * ndev
    for start in range(0, n_nets, size):
        yield start, min(size, n_nets - start), size


#: networks an ensemble may have: 64-bit indices with jax_enable_x64, else 32-bit ones
def max_networks() -> int:
    return 2**63 - 1 if jax.config.jax_enable_x64 else 2**31 - 1


def _check_size(fn, n_nets, chunk):
    _checks.positive_int(fn, n_nets=n_nets, chunk=chunk)
    if n_nets > max_networks():
        raise _checks.PDLTValueError(
            f"{fn}: `n_nets`={n_nets} needs 64-bit network indices; enable "
            "jax.config.update('jax_enable_x64', True) (at most 2^31 - 1 networks without it)")


def _indices(start, m_pad, mesh):
    """Global index array ``start .. start+m_pad-1`` sharded over the mesh (each process builds its own
    shards); 64-bit with ``jax_enable_x64`` (no wrap past 2^31), else 32-bit."""
    sharding = NamedSharding(mesh, P(AXIS))
    host = np.arange(start, start + m_pad, dtype=np.int64 if jax.config.jax_enable_x64 else np.int32)
    return jax.make_array_from_callback((m_pad,), sharding, lambda s: host[s])


def _vmapped(fn, key, idx, operands, static, micro, batch=None):
    # micro-batched on a one-device CPU mesh (pdlt._netmap); a plain vmap over a sharded index axis
    return network_map(lambda i: fn(key, i, *operands, **dict(static)), idx, micro=micro, batch=batch)


@partial(jax.jit, static_argnames=("fn", "static"))
def _one_network(key, index, operands, *, fn, static):
    return fn(key, index, *operands, **dict(static))


@partial(jax.jit, static_argnames=("fn", "static", "mesh", "batch"))
def _map_chunk(key, idx, operands, *, fn, static, mesh, batch=None):
    out = _vmapped(fn, key, idx, operands, static, mesh.devices.size == 1, batch)
    spec = NamedSharding(mesh, P(AXIS))
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, spec), out)


def _power_sums(out, shift, w, cross):
    """Weighted power sums S1..S4 of the shifted outputs of a batch (and the cross products)."""
    def sums(a, s):
        # the network axis is contracted with the weights as a matrix-vector product (XLA's CPU
        # reduction over a leading axis is several times slower than a GEMV here)
        d = (a - s[None]).astype(w.dtype).reshape(a.shape[0], -1)
        d2 = d * d
        S = [w @ d, w @ d2, w @ (d2 * d), w @ (d2 * d2)]
        return {f"S{k + 1}": v.reshape(a.shape[1:]) for k, v in enumerate(S)}

    res = jax.tree.map(sums, out, shift)
    if cross is not None:
        v = cross(jax.tree.map(lambda a, s: (a - s[None]), out, shift)).astype(w.dtype) * w[:, None]
        res = (res, v.T @ v)
    return res


@partial(jax.jit, static_argnames=("fn", "static", "mesh", "cross"))
def _reduce_chunk(key, idx, n_nets, shift, operands, *, fn, static, mesh, cross):
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    w = (idx < n_nets).astype(dtype)
    B = CPU_MICRO_BATCH

    def one(i):
        return fn(key, i, *operands, **dict(static))

    if not micro_batched(idx.shape[0], mesh.devices.size == 1):
        return _power_sums(jax.vmap(one)(idx), shift, w, cross), w.sum()
    # as pdlt._netmap.network_map, but the sums are accumulated per micro-batch in the scan, so that
    # only B networks' outputs (and their float64 powers) exist at a time; padding indices >= n_nets
    # weigh zero.
    rows = jnp.concatenate([idx, jnp.full((-idx.shape[0] % B,), n_nets, idx.dtype)]).reshape(-1, B)

    def batch_sums(row):
        return _power_sums(jax.vmap(one)(row), shift, (row < n_nets).astype(dtype), cross)

    init = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(batch_sums, rows[0]))
    total, _ = jax.lax.scan(lambda acc, row: (jax.tree.map(jnp.add, acc, batch_sums(row)), None), init, rows)
    return total, w.sum()


def _process_gather(a):
    if jax.process_count() == 1:
        return np.asarray(a)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(a, tiled=True))


def ensemble_map(fn, key, n_nets: int, operands=(), *, static=(), chunk: int = 4096, mesh=None,
                 progress: bool | None = None, desc: str = "ensemble", micro_batch: int | None = None):
    """Evaluate ``fn(key, i, *operands, **static)`` for networks ``i = 0..n_nets-1``, sharded and chunked.

    Args:
      fn: a module-level function (it is a static argument of ``jax.jit``; a fresh lambda per call
        would recompile) returning a pytree of arrays for one network.
      key: the ensemble's ``jax.random.key``.
      n_nets: ensemble size (>= 1). operands: tuple of arrays passed to every network (replicated).
      static: tuple of ``(name, value)`` pairs of hashable keyword arguments.
      chunk: at most this many networks per step: the ensemble is cut into as few steps as that allows,
        all of one size (one compilation; rounded up to a multiple of the device count).
      mesh: a mesh from :func:`ensemble_mesh` (default: all devices).
      micro_batch: networks per micro-batch on a CPU (default 8); 1 maps them one at a time (the
        smallest program to compile, for large per-network computations). Never changes a number's
        dependence on the chunk size: every chunk goes through the same micro-batch program.
    Returns:
      The pytree of ``fn`` with a leading axis ``n_nets``, as NumPy arrays on every process.
    Raises:
      PDLTValueError: ``n_nets`` or ``chunk`` not a positive integer.
    """
    from ._progress import progress_bar

    _check_size("ensemble_map", n_nets, chunk)
    if micro_batch is not None:
        _checks.positive_int("ensemble_map", micro_batch=micro_batch)
    mesh = _mesh("ensemble_map", mesh)
    ndev = mesh.devices.size
    plan = list(_even_chunks(n_nets, chunk, ndev))
    parts = []
    bar = progress_bar(n_nets, desc=desc, enable=None if progress is None else (progress and len(plan) > 1))
    for start, m, m_pad in plan:
        out = _map_chunk(key, _indices(start, m_pad, mesh), tuple(operands), fn=fn, static=tuple(static), mesh=mesh,
                         batch=micro_batch)
        parts.append(jax.tree.map(lambda a: _process_gather(a)[:m], out))
        bar.update(m)
    bar.close()
    if len(parts) == 1:  # one chunk: no copy (a concatenate would copy every per-network output once more)
        return parts[0]
    return jax.tree.map(lambda *a: np.concatenate(a), *parts)


def _mesh(fn, mesh):
    if mesh is None:
        return ensemble_mesh()
    if not isinstance(mesh, Mesh):
        raise _checks.PDLTValueError(f"{fn}: `mesh` must be a jax.sharding.Mesh from pdlt.ensemble_mesh(), "
                                     f"got {mesh!r}")
    return mesh


def _digest(key, arrays, *parts) -> str:
    """A fingerprint of a computation: its descriptive ``parts`` (reprs), the x64 mode, the key and the arrays."""
    import hashlib

    h = hashlib.sha256()
    for part in (*parts, jax.config.jax_enable_x64):
        h.update(repr(part).encode())
    h.update(np.asarray(jax.random.key_data(key)).tobytes())
    for a in jax.tree.leaves(arrays):
        a = np.asarray(a)
        h.update(repr((a.shape, str(a.dtype))).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _fingerprint(fn, key, n_nets, chunk, ndev, operands, static, cross) -> str:
    """What a checkpoint belongs to: the function, key, sizes, operands and static arguments."""
    return _digest(key, operands, getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn)), n_nets,
                   chunk, ndev, repr(static), getattr(cross, "__qualname__", repr(cross)))


def _load_checkpoint(fname, path, fp):
    import pickle
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        return None
    try:
        state = pickle.loads(p.read_bytes())
    except Exception as e:
        raise _checks.PDLTValueError(f"{fname}: `checkpoint` {p} cannot be read ({type(e).__name__}); "
                                     "remove it to start afresh") from None
    if state.get("fingerprint") != fp:
        raise _checks.PDLTValueError(f"{fname}: `checkpoint` {p} belongs to another computation (other "
                                     "key, sizes, inputs or arguments); remove it or choose another path")
    return state


def _save_checkpoint(path, state):
    import pickle

    from ._provenance import atomic_write

    atomic_write(path, pickle.dumps(state, protocol=4))


def resumable_chunks(fname, n_chunks, step, *, checkpoint=None, fingerprint=None, every: int = 8, bar=None):
    """Fold ``step(c, acc) -> (acc, networks in chunk c)`` over chunks ``c = 0..n_chunks-1`` (``acc`` starts
    as None), resumably: the one checkpoint mechanism of the streamed ensembles.

    With ``checkpoint`` (a file path) the running ``acc`` is saved every ``every`` chunks and when the
    loop is interrupted (Ctrl-C, an error), atomically (temporary file, ``os.replace``), with
    ``fingerprint`` (a digest of everything that defines the computation); a later call with the same
    fingerprint resumes after the last saved chunk, so the chunks are folded in the same order and the
    result is bitwise that of an uninterrupted run. A checkpoint with another fingerprint is refused
    (PDLTValueError naming ``fname``); the file is removed when the loop completes. ``bar(done_chunks)``
    makes the progress bar (``.update(m)``, ``.close()``).
    """
    from pathlib import Path

    from ._progress import _NoBar

    acc, first = None, 0
    if checkpoint is not None:
        state = _load_checkpoint(fname, checkpoint, fingerprint)
        if state is not None:
            acc, first = state["acc"], state["next_chunk"]
    pbar = _NoBar() if bar is None else bar(first)
    # the running state is replaced as one object after each chunk, so that an interruption saves
    # either the state before the chunk or after it, never a half-updated one
    st = (acc, first)

    def save():
        if checkpoint is not None and first < st[1] < n_chunks:
            _save_checkpoint(checkpoint, {"fingerprint": fingerprint, "acc": st[0], "next_chunk": st[1]})

    try:
        for c in range(first, n_chunks):
            new, m = step(c, st[0])
            st = (new, c + 1)
            pbar.update(m)
            if (c + 1) % every == 0:
                save()
    except BaseException:
        save()   # the state after every completed chunk
        raise
    finally:
        pbar.close()
    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()
    return st[0]


def ensemble_reduce(fn, key, n_nets: int, operands=(), *, static=(), chunk: int = 4096, mesh=None, cross=None,
                    progress: bool | None = None, desc: str = "ensemble", checkpoint=None,
                    checkpoint_every: int = 8):
    r"""Streaming power sums of ``fn``'s outputs over networks ``0..n_nets-1`` (memory flat in ``n_nets``).

    For every output leaf ``a_i`` the sums :math:`S_k = \sum_i (a_i - a_0)^k`, ``k = 1..4``, are
    accumulated in float64 on the host, shifted by network 0's value (the shifted-data algorithm:
    no cancellation when the spread is small against the mean). With ``cross`` (a function
    mapping the batched, shifted output pytree to a ``(m, P)`` matrix, e.g. the flattened kernel
    entries) the sum of outer products :math:`\sum_i d_i d_i^\top` is accumulated as well.

    With ``checkpoint`` (a file path) the running sums are saved every ``checkpoint_every`` chunks and
    when the loop is interrupted (Ctrl-C, an error), atomically (temporary file, ``os.replace``); a
    later call with the same arguments resumes after the last saved chunk and returns bitwise the
    same sums as an uninterrupted run (the chunks are added in the same order). The file holds a
    fingerprint of the function, key, sizes, inputs and arguments, and a checkpoint of another
    computation is refused; it is removed when the ensemble is complete.

    Args:
      as :func:`ensemble_map`, plus ``cross``, ``checkpoint``, ``checkpoint_every``.
    Returns:
      ``dict(n=n_nets, shift=..., sums=..., cross=...)``; turn it into moments with
      :func:`moments_from_sums`.
    """
    from ._progress import progress_bar

    fname = "ensemble_reduce"
    _check_size(fname, n_nets, chunk)
    _checks.positive_int(fname, checkpoint_every=checkpoint_every)
    mesh = _mesh(fname, mesh)
    ndev = mesh.devices.size
    static = tuple(static)
    shift = jax.tree.map(np.asarray, _one_network(key, 0, tuple(operands), fn=fn, static=static))
    plan = list(_chunks(n_nets, chunk, ndev))
    fp = _fingerprint(fn, key, n_nets, chunk, ndev, operands, static, cross) if checkpoint is not None else None

    def step(c, acc):
        start, m, m_pad = plan[c]
        sums, cr = (None, None) if acc is None else acc
        res, _ = _reduce_chunk(key, _indices(start, m_pad, mesh), n_nets, shift, tuple(operands),
                               fn=fn, static=static, mesh=mesh, cross=cross)
        if cross is not None:
            res, chunk_cross = res
            chunk_cross = np.asarray(chunk_cross, dtype=np.float64)
            cr = chunk_cross if cr is None else cr + chunk_cross
        res = jax.tree.map(lambda a: np.asarray(a, dtype=np.float64), res)
        return (res if sums is None else jax.tree.map(np.add, sums, res), cr), m

    def bar(first):
        return progress_bar(n_nets, desc=desc, initial=sum(m for _, m, _ in plan[:first]),
                            enable=None if progress is None else (progress and len(plan) > 1))

    total, total_cross = resumable_chunks(fname, len(plan), step, checkpoint=checkpoint, fingerprint=fp,
                                          every=checkpoint_every, bar=bar)
    return {"n": n_nets, "shift": shift, "sums": total, "cross": total_cross}


def moments_from_sums(n, shift, sums):
    r"""Mean, unbiased variance, and their standard errors from shifted power sums (one leaf).

    With :math:`\mu_k = S_k/n` of the shifted data :math:`d`, the mean is ``shift + mu_1``; the central
    moments are :math:`m_2 = \mu_2-\mu_1^2` and :math:`m_4 = \mu_4 - 4\mu_1\mu_3 + 6\mu_1^2\mu_2 - 3\mu_1^4`.
    The SEs are :math:`\sqrt{m_2 n/(n-1)/n}` for the mean and :math:`\sqrt{(m_4-m_2^2)/n}` for the
    variance (the delta-method rule of :func:`pdlt.variance_and_se`).

    Returns:
      ``dict(mean, mean_se, var, var_se)`` of NumPy arrays.
    """
    mu1, mu2, mu3, mu4 = (np.asarray(sums[k], dtype=np.float64) / n for k in ("S1", "S2", "S3", "S4"))
    m2 = np.maximum(mu2 - mu1**2, 0.0)
    m4 = mu4 - 4 * mu1 * mu3 + 6 * mu1**2 * mu2 - 3 * mu1**4
    var = m2 * n / (n - 1)
    return {"mean": np.asarray(shift, np.float64) + mu1, "mean_se": np.sqrt(var / n),
            "var": var, "var_se": np.sqrt(np.maximum(m4 - m2**2, 0.0) / n)}
