"""Progress bars for long loops (tqdm on stderr; off when ``PDLT_PROGRESS=0``)."""
from __future__ import annotations

import os

__all__ = ["progress_range"]


def progress_range(start: int, stop: int, step: int = 1, *, desc: str = "", enable: bool | None = None):
    """``range(start, stop, step)`` wrapped in a tqdm bar when there is more than one step."""
    r = range(start, stop, step)
    if enable is None:
        enable = os.environ.get("PDLT_PROGRESS", "1") != "0" and len(r) > 1
    if not enable:
        return r
    from tqdm import tqdm

    return tqdm(r, desc=desc, leave=False, mininterval=1.0)
