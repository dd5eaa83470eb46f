"""Where and how a result was computed: library hash, JAX version, backend, devices, dtype."""
from __future__ import annotations

import hashlib
import platform
from pathlib import Path

__all__ = ["lib_hash", "provenance"]


def lib_hash() -> str:
    """SHA-256 (first 12 hex digits) of every ``.py`` file of the installed ``pdlt`` package."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def provenance() -> dict:
    import jax

    devs = jax.devices()
    return {
        "lib_hash": lib_hash(),
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devs],
        "device_kind": devs[0].device_kind if devs else "",
        "x64": bool(jax.config.read("jax_enable_x64")),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
