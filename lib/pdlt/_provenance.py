"""Where and how a result was computed (library hash, versions, backend), and how results are written.

* :func:`lib_hash`, :func:`versions`, :func:`provenance`: what a result was computed with; the book's
  pages flag a result whose library hash, versions or parameters differ from the build's.
* :func:`atomic_write`, :func:`atomic_savefig`: every results file is written to a temporary name in
  its own folder and renamed over the old one (``os.replace``, atomic on POSIX), so a failed write
  (full disk, Ctrl-C) leaves the previous file whole or no file, never a truncated one.
* :func:`json_safe`, :func:`dumps`: strict JSON (RFC 8259 has no NaN/Infinity): a non-finite number
  becomes ``null`` and its location is listed under the key ``"nonfinite"``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import tempfile
from pathlib import Path

__all__ = ["lib_hash", "versions", "provenance", "atomic_write", "atomic_savefig", "json_safe", "dumps"]

#: distributions whose versions change the numbers (the execution cache and the pages key on them)
DEPENDENCIES = ("jax", "jaxlib", "numpy", "scipy")


def lib_hash() -> str:
    """SHA-256 (first 12 hex digits) of every ``.py`` file of the installed ``pdlt`` package."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def _versions() -> tuple:
    from importlib import metadata

    out = [("python", platform.python_version())]
    for d in DEPENDENCIES:
        try:
            out.append((d, metadata.version(d)))
        except metadata.PackageNotFoundError:
            pass
    return tuple(out)


def versions() -> dict:
    """``{distribution: version}`` of Python and of :data:`DEPENDENCIES` (missing ones omitted)."""
    return dict(_versions())


def build_hash() -> str:
    """Hash of the library *and* the dependency versions: what the book's execution cache keys on."""
    h = hashlib.sha256(lib_hash().encode())
    h.update(json.dumps(versions(), sort_keys=True).encode())
    return h.hexdigest()[:12]


def provenance() -> dict:
    import jax

    devs = jax.devices()
    return {
        "lib_hash": lib_hash(),
        "jax_version": jax.__version__,
        "versions": versions(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devs],
        "device_kind": devs[0].device_kind if devs else "",
        "x64": bool(jax.config.read("jax_enable_x64")),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


def atomic_write(path, data) -> Path:
    """Write ``data`` (str or bytes) to ``path`` atomically: temporary file in the same folder, fsync,
    ``os.replace``. On any failure the temporary file is removed and the old ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # the permissions of a plain open(), not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_savefig(fig, path, **kw) -> Path:
    """``fig.savefig`` to a temporary name beside ``path``, then ``os.replace`` (format from the suffix)."""
    import io

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", **kw)
    return atomic_write(path, buf.getvalue())


def json_safe(obj, _path: str = "", _bad: list | None = None):
    """``(clean, nonfinite)``: ``obj`` with numpy scalars/arrays as Python values and every NaN/inf
    replaced by None; ``nonfinite`` lists where they were (``"ledger[3].measured"``)."""
    bad = [] if _bad is None else _bad
    if isinstance(obj, dict):
        out = {str(k): json_safe(v, f"{_path}.{k}" if _path else str(k), bad)[0] for k, v in obj.items()}
    elif isinstance(obj, (list, tuple)):
        out = [json_safe(v, f"{_path}[{i}]", bad)[0] for i, v in enumerate(obj)]
    elif isinstance(obj, bool) or obj is None or isinstance(obj, str):
        out = obj
    elif isinstance(obj, int):
        out = obj
    elif isinstance(obj, float):
        out = obj if math.isfinite(obj) else None
        if out is None:
            bad.append(_path)
    elif hasattr(obj, "tolist"):  # numpy / JAX scalars and arrays
        return json_safe(obj.tolist(), _path, bad)
    elif isinstance(obj, Path):
        out = str(obj)
    else:
        try:
            return json_safe(float(obj), _path, bad)
        except (TypeError, ValueError):
            out = str(obj)
    return out, bad


def dumps(obj, indent=1) -> str:
    """Strict JSON of ``obj`` (see :func:`json_safe`); a dict gains ``"nonfinite": [...]`` if needed."""
    clean, bad = json_safe(obj)
    if bad and isinstance(clean, dict):
        clean["nonfinite"] = sorted(set(clean.get("nonfinite") or []) | set(bad))
    return json.dumps(clean, indent=indent, allow_nan=False)
