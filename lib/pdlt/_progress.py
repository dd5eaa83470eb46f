"""Progress bars for long loops (tqdm on stderr; off when ``PDLT_PROGRESS=0``)."""
from __future__ import annotations

import os

__all__ = ["progress_range", "even_chunk"]


def progress_range(start: int, stop: int, step: int = 1, *, desc: str = "", enable: bool | None = None):
    """``range(start, stop, step)`` wrapped in a tqdm bar when there is more than one step."""
    r = range(start, stop, step)
    if enable is None:
        enable = os.environ.get("PDLT_PROGRESS", "1") != "0" and len(r) > 1
    if not enable:
        return r
    from tqdm import tqdm

    return tqdm(r, desc=desc, leave=False, mininterval=1.0)


def even_chunk(n_nets: int, chunk: int) -> int:
    """The chunk size that splits ``n_nets`` networks into as few chunks of at most ``chunk`` as possible,
    all of one size (one compilation), the last padded by fewer networks than there are chunks.

    E.g. 600 networks with ``chunk=500`` run as two chunks of 300 (not 500 + 100, two compilations, nor
    500 + 500, 400 networks wasted).
    """
    n_chunks = -(-n_nets // chunk)
    return -(-n_nets // n_chunks)
