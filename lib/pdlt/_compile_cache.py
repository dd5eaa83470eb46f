"""The persistent JAX compilation cache (compiled XLA programs reused across processes and builds).

JAX reads ``JAX_COMPILATION_CACHE_DIR`` by itself, but by default it only stores programs whose
compilation took over one second, which skips nearly every program of a chapter on CPU. This turns the
cache on for all of them.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["enable_compilation_cache"]


def enable_compilation_cache(path=None, *, min_compile_time_s: float = 0.0) -> Path | None:
    """Store every compiled program in ``path`` (default ``$JAX_COMPILATION_CACHE_DIR``; none: do nothing).

    Args:
      path: cache folder (created if missing).
      min_compile_time_s: cache only programs that took longer than this to compile (>= 0).
    Returns:
      the cache folder, or None when no folder was given or set.
    Raises:
      PDLTValueError for a negative ``min_compile_time_s``.
    """
    import jax

    from . import _checks

    _checks.nonnegative("enable_compilation_cache", min_compile_time_s=min_compile_time_s)
    path = path or os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if not path:
        return None
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
