"""Digests of the first networks drawn by each sampler family, on fixed keys and small networks.

``python tests/golden/samplers.py`` rewrites ``tests/golden/samplers.json``; ``tests/test_golden.py``
recomputes every digest and compares. A digest is the SHA-256 of every returned number printed with
13 significant digits, so it is bitwise in practice and blind only to the last two or three bits.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import pdlt  # noqa: E402

GOLDEN = Path(__file__).with_name("samplers.json")


def _x():
    return jax.random.normal(jax.random.key(7), (3, 4))


def _families():
    x, key = _x(), jax.random.key(11)
    w = (8, 8, 2)
    return {
        "ensemble_metrics-conditional": lambda: pdlt.ensemble_metrics(
            key, x, widths=w, C_b=0.1, C_W=2.0, activation="relu", n_nets=4, progress=False),
        "ensemble_metrics-explicit": lambda: pdlt.ensemble_metrics(
            key, x, widths=w, C_b=0.1, C_W=1.0, activation="tanh", n_nets=4, method="explicit", progress=False),
        "fast_ensemble_metrics-splitmix": lambda: pdlt.fast_ensemble_metrics(
            key, x, widths=w, C_b=0.1, C_W=2.0, activation="relu", n_nets=4, rng="splitmix", progress=False),
        "fast_ensemble_metrics-threefry": lambda: pdlt.fast_ensemble_metrics(
            key, x, widths=w, C_b=0.1, C_W=2.0, activation="relu", n_nets=4, rng="threefry", progress=False),
        "ensemble_ntk": lambda: pdlt.ensemble_ntk(
            key, x, widths=w, C_b=0.1, C_W=1.0, activation="tanh", n_nets=4, progress=False),
        "ntk_conditional_samples": lambda: pdlt.ntk_conditional_samples(
            key, x[0], n=8, L=3, C_b=0.1, C_W=2.0, activation="relu", n_nets=4, progress=False),
        "residual_ensemble": lambda: pdlt.residual_ensemble(
            key, x[0], n=8, L=3, xi=0.8, gamma=0.6, C_b=0.0, C_W=1.0, activation="tanh", n_nets=4,
            progress=False),
        "resnet_ensemble": lambda: pdlt.resnet_ensemble(
            key, x, n=8, L=3, C_W=2.0, activation="relu", n_nets=4, progress=False),
        "weights_ensemble_metrics-orthogonal": lambda: pdlt.weights_ensemble_metrics(
            key, x, widths=w, sampler=pdlt.weight_sampler("orthogonal"), C_W=1.0, activation="tanh",
            n_nets=4, progress=False),
        "init_ensemble": lambda: pdlt.init_ensemble(key, 4, w, C_b=0.1, C_W=2.0, n_nets=4),
        "sample_quartic": lambda: pdlt.sample_quartic(key, 1.0, 0.2, 16),
    }


def _numbers(tree) -> list[float]:
    if isinstance(tree, dict):
        return [v for k in sorted(tree) for v in _numbers(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [v for t in tree for v in _numbers(t)]
    try:
        arr = np.asarray(tree)
    except Exception:  # non-array leaves (names, flags)
        return []
    if arr.dtype.kind not in "fiub":
        return []
    return [float(v) for v in arr.astype(np.float64).ravel()]


def digest(values: list[float]) -> str:
    return hashlib.sha256(",".join(f"{v:.12e}" for v in values).encode()).hexdigest()


def compute(names=None) -> dict:
    out = {}
    for name, fn in _families().items():
        if names is None or name in names:
            vals = _numbers(fn())
            out[name] = {"count": len(vals), "digest": digest(vals), "head": vals[:6]}
    return out


if __name__ == "__main__":
    res = compute()
    GOLDEN.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {GOLDEN} ({len(res)} sampler families)", file=sys.stderr)
