"""Validation helpers shared by the public functions of the library.

Every public function checks its arguments here, *before* any compute, and raises one
``ValueError``/``TypeError`` whose message names the function, the argument, the value it
received and the rule (the style of ``jax.random``'s own messages). Value checks are skipped
for traced arrays so the public functions stay usable under ``jit``/``vmap``.
"""
from __future__ import annotations

import numbers

import jax
import numpy as np

__all__ = ["PDLTValueError"]


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
