"""Validation helpers shared by the public functions of the library.

Every public function checks its arguments here, *before* any compute, and raises one
``ValueError``/``TypeError`` whose message names the function, the argument, the value it
received and the rule (the style of ``jax.random``'s own messages). Value checks are skipped
for traced arrays so the public functions stay usable under ``jit``/``vmap``.
"""
from __future__ import annotations

import functools
import numbers
import threading

import jax
import numpy as np

__all__ = ["PDLTValueError", "warn_nonfinite"]


class PDLTValueError(ValueError):
    """A bad argument, detected before any compute. The message names the argument."""


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _scalars(x):
    if _is_traced(x):
        return None
    return np.asarray(x, dtype=float).ravel()


def positive(fn: str, **kw) -> None:
    for name, x in kw.items():
        v = _scalars(x)
        if v is not None and (not np.all(np.isfinite(v)) or np.any(v <= 0)):
            raise PDLTValueError(f"{fn}: `{name}` must be > 0, got {x!r}")


def nonnegative(fn: str, **kw) -> None:
    for name, x in kw.items():
        v = _scalars(x)
        if v is not None and (not np.all(np.isfinite(v)) or np.any(v < 0)):
            raise PDLTValueError(f"{fn}: `{name}` must be >= 0, got {x!r}")


def positive_int(fn: str, **kw) -> None:
    for name, x in kw.items():
        if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 1:
            raise PDLTValueError(f"{fn}: `{name}` must be an integer >= 1, got {x!r}")


def widths(fn: str, name: str, value) -> tuple[int, ...]:
    """A sequence of layer widths n_1..n_L (every entry an integer >= 1)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        out = tuple(value)
    except TypeError:
        raise PDLTValueError(f"{fn}: `{name}` must be a sequence of integers >= 1, got {value!r}") from None
    if not out or any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in out):
        raise PDLTValueError(f"{fn}: `{name}` must be a non-empty sequence of integers >= 1, got {value!r}")
    return tuple(int(w) for w in out)


def one_of(fn: str, name: str, value, allowed) -> None:
    if value not in allowed:
        raise PDLTValueError(f"{fn}: unknown `{name}` {value!r}; valid: {', '.join(map(str, allowed))}")


def per_layer(fn: str, name: str, value, L: int):
    """A scalar, or a sequence of length L (one value per layer). Returns a tuple of L floats."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (float(value),) * L
    try:
        vals = tuple(float(v) for v in value)
    except TypeError:
        raise PDLTValueError(f"{fn}: `{name}` must be a number or a sequence of {L} numbers, got {value!r}") from None
    if len(vals) != L:
        raise PDLTValueError(f"{fn}: `{name}` has {len(vals)} entries but the depth is L={L}; give one per layer")
    return vals


def per_layer_variances(fn: str, C_b, C_W, L: int):
    """Per-layer initialization variances: ``(C_b, C_W)`` as two tuples of L floats, C_b >= 0, C_W > 0."""
    Cb = per_layer(fn, "C_b", C_b, L)
    Cw = per_layer(fn, "C_W", C_W, L)
    nonnegative(fn, C_b=Cb)
    positive(fn, C_W=Cw)
    return Cb, Cw


def per_layer_rates(fn: str, lambda_b, lambda_W, L: int):
    """Per-layer learning rates: ``(lambda_b, lambda_W)`` as two tuples of L floats, both >= 0."""
    lb = per_layer(fn, "lambda_b", lambda_b, L)
    lw = per_layer(fn, "lambda_W", lambda_W, L)
    nonnegative(fn, lambda_b=lb, lambda_W=lw)
    return lb, lw


def prng_key(fn: str, name: str, key) -> None:
    """A JAX PRNG key: a typed key array (``jax.random.key(seed)``) or a legacy ``uint32[2]`` key."""
    if _is_traced(key):
        return
    dt = getattr(key, "dtype", None)
    if dt is not None and jax.dtypes.issubdtype(dt, jax.dtypes.prng_key):
        if getattr(key, "shape", ()) != ():
            raise PDLTValueError(f"{fn}: `{name}` must be a single PRNG key, got a key array of shape {key.shape}")
        return
    if dt is not None and np.dtype(dt) == np.uint32 and tuple(getattr(key, "shape", ())) == (2,):
        return
    raise PDLTValueError(f"{fn}: `{name}` must be a PRNG key from jax.random.key(seed), got {key!r}"[:300])


def float_dtype(fn: str, name: str, dtype) -> None:
    """A floating-point dtype (or None for the default)."""
    if dtype is None:
        return
    try:
        ok = np.issubdtype(np.dtype(dtype), np.floating)
    except TypeError:
        ok = False
    if not ok:
        raise PDLTValueError(f"{fn}: `{name}` must be a floating-point dtype (float32 or float64), got {dtype!r}")


def finite(fn: str, **arrays) -> None:
    """Every entry finite (no NaN, no inf); traced arrays are skipped."""
    for name, x in arrays.items():
        if _is_traced(x):
            continue
        v = np.asarray(x)
        if not np.issubdtype(v.dtype, np.number):
            raise PDLTValueError(f"{fn}: `{name}` must be numeric, got dtype {v.dtype}")
        bad = v.size - int(np.isfinite(v).sum())
        if bad:
            raise PDLTValueError(f"{fn}: `{name}` must be finite, got {bad} non-finite entr{'y' if bad == 1 else 'ies'} "
                                 "(NaN or inf)")


def kernel(fn: str, name: str, K, *, square: bool = True) -> None:
    r"""A kernel: finite, and either a scalar >= 0 or a symmetric positive semi-definite ``(N, N)`` matrix
    (eigenvalues >= -1e-10 of the largest |entry|, rounding). ``(..., N, N)`` stacks are checked per matrix."""
    if _is_traced(K):
        return
    v = np.asarray(K, dtype=float)
    finite(fn, **{name: v})
    if v.ndim == 0:
        if v < 0:
            raise PDLTValueError(f"{fn}: `{name}` (a variance) must be >= 0, got {float(v)!r}")
        return
    if not square:
        return
    if v.ndim < 2 or v.shape[-1] != v.shape[-2]:
        raise PDLTValueError(f"{fn}: `{name}` must be a scalar or a square (N, N) matrix, got shape {v.shape}")
    scale = max(float(np.abs(v).max()), np.finfo(float).tiny)
    if not np.allclose(v, np.swapaxes(v, -1, -2), rtol=0, atol=1e-10 * scale):
        raise PDLTValueError(f"{fn}: `{name}` must be symmetric")
    lo = float(np.linalg.eigvalsh(v).min())
    if lo < -1e-10 * scale:
        raise PDLTValueError(f"{fn}: `{name}` must be positive semi-definite, got an eigenvalue {lo:.3g}")


def warn_nonfinite(fn: str, values, what: str = "result") -> bool:
    """The one warning for non-finite results (overflow or NaN), shared by recursions and samplers.

    Warns once per call with a RuntimeWarning naming ``fn``, how many entries, the dtype and the remedy;
    returns True if a non-finite value was found (traced values are not inspected).
    """
    import warnings

    if getattr(_WITHIN, "depth", 0):   # inside a call wrapped by warns_nonfinite: that call warns, once
        return False
    leaves = [a for a in jax.tree_util.tree_leaves(values) if not _is_traced(a)]
    bad, dt = 0, None
    for a in leaves:
        a = np.asarray(a)
        if np.issubdtype(a.dtype, np.inexact):
            n = a.size - int(np.isfinite(a).sum())
            if n:
                bad, dt = bad + n, a.dtype
    if bad:
        hint = ("enable float64 with jax.config.update('jax_enable_x64', True) (pdlt.book.Chapter does this)"
                if dt != np.float64 else "the values overflow even float64: reduce the depth or C_W")
        warnings.warn(f"{fn}: {bad} non-finite value(s) in the {dt} {what} (overflow/NaN, e.g. an exploding "
                      f"kernel in the chaotic phase); {hint}", RuntimeWarning, stacklevel=3)
    return bool(bad)


_WITHIN = threading.local()   # depth of nested calls wrapped by warns_nonfinite (per thread)


def warns_nonfinite(what: str = "result"):
    """Decorator: the function's result is checked by :func:`warn_nonfinite` (one RuntimeWarning naming
    the function, whatever the dtype). Only the outermost wrapped call checks and warns, so a recursion
    built on other wrapped recursions warns once, under its own name."""
    def wrap(f):
        @functools.wraps(f)
        def checked(*args, **kwargs):
            _WITHIN.depth = getattr(_WITHIN, "depth", 0) + 1
            try:
                out = f(*args, **kwargs)
            finally:
                _WITHIN.depth -= 1
            if not _WITHIN.depth:
                warn_nonfinite(f.__name__, out, what)
            return out
        return checked
    return wrap
