"""Mapping a per-network function over an ensemble's network indices (``vmap``, micro-batched on CPU).

On a CPU a single ``vmap`` over hundreds of networks materialises every network's weights or
activations of a layer at once (e.g. 256 networks x 256 x 256 float64 weights = 128 MB per layer),
which runs at memory speed. :func:`network_map` instead scans over micro-batches of
``CPU_MICRO_BATCH`` networks, each ``vmap``-ed, so that the working set stays in cache: 1.4-1.9x
faster on the benchmark ensembles of ``make bench`` (w1). On GPUs and TPUs (and inside a program
sharded over several devices) it is a plain ``vmap``. Every network computes the same operations
either way; only the batching of the linear algebra differs (results agree to rounding).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["network_map", "micro_batched", "CPU_MICRO_BATCH"]

CPU_MICRO_BATCH = 8


def micro_batched(n: int, micro: bool = True) -> bool:
    """Whether ``n`` networks are mapped in micro-batches (the CPU backend; ``n`` is only for the callers' use).

    On a CPU every network goes through the one micro-batch program, however few there are: XLA's
    code for a batch of two networks, say, may round differently from its code for eight, so a
    remainder chunk of a few networks mapped by a plain ``vmap`` would make a network's numbers depend on
    the chunk size.
    """
    return micro and jax.default_backend() == "cpu"


def network_map(one, idx, *, micro: bool = True, batch: int | None = None):
    """``jax.vmap(one)(idx)``, computed in micro-batches of ``batch`` networks on the CPU backend.

    Args:
      one: function of one network index (returns a pytree). idx: 1-d array of indices.
      micro: False forces a plain vmap (e.g. when ``idx`` is sharded over several devices).
      batch: networks per micro-batch on a CPU (default ``CPU_MICRO_BATCH``); 1 runs them one at a time
        (a loop: the smallest program, for large per-network computations such as third derivatives).
    """
    n = idx.shape[0]
    batch = CPU_MICRO_BATCH if batch is None else int(batch)
    if not micro_batched(n, micro):
        return jax.vmap(one)(idx)
    if batch == 1:
        return jax.lax.map(one, idx)
    pad = -n % batch                # pad to whole micro-batches (repeating the last index), so that the
    if pad:                         # body is compiled once, not once more for a remainder batch
        idx = jnp.concatenate([idx, jnp.broadcast_to(idx[-1:], (pad,))])
    out = jax.lax.map(one, idx, batch_size=batch)
    return jax.tree.map(lambda a: a[:n], out) if pad else out
