"""Progress bars for long loops (tqdm on stderr; off when ``PDLT_PROGRESS=0``)."""
from __future__ import annotations

import os

__all__ = ["progress_range", "progress_bar", "even_chunk"]


def progress_range(start: int, stop: int, step: int = 1, *, desc: str = "", enable: bool | None = None):
    """``range(start, stop, step)`` wrapped in a tqdm bar when there is more than one step."""
    r = range(start, stop, step)
    if enable is None:
        enable = os.environ.get("PDLT_PROGRESS", "1") != "0" and len(r) > 1
    if not enable:
        return r
    from tqdm import tqdm

    return tqdm(r, desc=desc, leave=False, mininterval=1.0)


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def progress_bar(total: int, *, desc: str = "", unit: str = "net", initial: int = 0, enable: bool | None = None):
    """A tqdm bar over ``total`` items (networks) showing the rate and the time left; ``.update(n)`` after
    each chunk, ``.close()`` at the end. A no-op object when disabled (``PDLT_PROGRESS=0``)."""
    if enable is None:
        enable = os.environ.get("PDLT_PROGRESS", "1") != "0"
    if not enable:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, unit_scale=True, leave=False, mininterval=1.0,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")


def even_chunk(n_nets: int, chunk: int) -> int:
    """The chunk size that splits ``n_nets`` networks into as few chunks of at most ``chunk`` as possible,
    all of one size (one compilation), the last padded by fewer networks than there are chunks.

    E.g. 600 networks with ``chunk=500`` run as two chunks of 300 (not 500 + 100, two compilations, nor
    500 + 500, 400 networks wasted).
    """
    n_chunks = -(-n_nets // chunk)
    return -(-n_nets // n_chunks)
