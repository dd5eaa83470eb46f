"""Workloads, timer and baselines shared by bench/run.py (our library) and bench/peer.py (neural-tangents).

Only plain JAX here (no pdlt): bench/peer.py imports this module in the peer environment (JAX 0.4.30).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PEER_JSON = RESULTS / "peer.json"

# The workloads of issue 8 (all ReLU, C_b = 0, C_W = 2, inputs N(0, 1) from seed 1).
W1 = dict(n_inputs=16, n0=32, width=256, depth=8, n_nets=256)       # ensemble statistics
W2 = dict(n_inputs=512, n0=32, width=256, depth=8, n_nets=64)       # compute-bound (64 nets: see README)
W3 = dict(n_inputs=256, n0=32, depths=(10, 50), nt_width=512)       # analytic kernels
W4 = dict(n_inputs=32, n0=32, width=512, depth=4, n_out=1, n_nets=64)  # empirical NTK
C_B, C_W = 0.0, 2.0


def inputs(n, n0, dtype):
    return jax.random.normal(jax.random.key(1), (n, n0)).astype(dtype)


def block(out):
    return jax.block_until_ready(out)


def timeit(f, *, min_runs=3, max_runs=7, budget_s=20.0):
    """Median wall time of ``f()`` after one warm-up call (which includes compilation and is reported apart).

    Runs at least ``min_runs`` and at most ``max_runs`` times, stopping after ``budget_s`` seconds.
    Returns dict(median_s, min_s, max_s, runs, first_s).
    """
    t0 = time.perf_counter()
    block(f())
    first = time.perf_counter() - t0
    ts, start = [], time.perf_counter()
    while len(ts) < max_runs and (len(ts) < min_runs or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        block(f())
        ts.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "runs": len(ts), "first_s": first}


def matmul_peak(dtype, n=1024):
    """Measured dense matmul throughput (GFLOP/s) for an n x n x n product: the machine's reference."""
    a = jax.random.normal(jax.random.key(0), (n, n)).astype(dtype)
    f = jax.jit(lambda a: a @ a)
    t = timeit(lambda: f(a), min_runs=5, max_runs=11, budget_s=5.0)
    t["gflops"] = 2 * n**3 / t["median_s"] / 1e9
    return t


def explicit_vmap_baseline(n_nets, n_inputs, n0, width, depth, dtype):
    """A plain explicit-weights ensemble: sample all weights, run the MLP, form every layer's Gram matrix.

    Returns a zero-argument function computing the (n_nets, depth, N, N) conditional metrics with
    ``jax.vmap`` over networks (the straightforward way to write it; the reference baseline).
    """
    x = inputs(n_inputs, n0, dtype)

    def one(k):
        ks = jax.random.split(k, depth)
        G = [C_B + C_W * x @ x.T / n0]
        h, fan = x, n0
        for ell in range(depth - 1):
            W = jax.random.normal(ks[ell], (fan, width), dtype) * jnp.sqrt(C_W / fan).astype(dtype)
            h = jax.nn.relu(h @ W)
            G.append(C_B + C_W * h @ h.T / width)
            fan = width
        return jnp.stack(G)

    f = jax.jit(lambda key: jax.vmap(lambda i: one(jax.random.fold_in(key, i)))(jnp.arange(n_nets)))
    key = jax.random.key(0)
    return lambda: f(key)


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
            "backend": jax.default_backend(),
            "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_json(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=float))
