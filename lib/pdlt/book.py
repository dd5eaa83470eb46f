"""What a chapter notebook needs beside the mathematics: parameters, ledger, glue, results file.

A chapter starts with::

    ch = pdlt.book.Chapter("ch02", seed=seed, widths=widths, n_nets=n_nets)

which validates the parameters (same rules as the runner), switches on float64, and gives:
``ch.key`` (the chapter's root PRNG key from ``seed``), ``ch.check(...)`` (a ledger entry),
``ch.glue(name, value)`` (a number for the prose), and ``ch.finish()`` (shows the chapter's
ledger table, writes ``<results dir>/<chapter>.json`` and fails on any unexpected outcome).

The results directory is ``$PDLT_RESULTS_DIR`` if set, else ``_build/results`` beside the
book's ``_toc.yml`` found above the working directory, else nothing is written.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import _params
from ._ledger import Ledger, LedgerEntry
from ._provenance import provenance

__all__ = ["Chapter", "results_dir", "ledger_frame"]


def results_dir() -> Path | None:
    env = os.environ.get("PDLT_RESULTS_DIR")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").exists():
            return d / "_build" / "results"
    return None


class Chapter:
    """One executed chapter: its parameters, ledger and provenance."""

    def __init__(self, chapter: str, *, title: str = "", x64: bool = True, **params):
        _params.validate(params)
        import jax

        if x64:
            jax.config.update("jax_enable_x64", True)
        self.chapter, self.title, self.params = chapter, title, dict(params)
        self.seed = int(params.get("seed", 0))
        self.ledger = Ledger(chapter)
        self._t0 = time.perf_counter()
        self._started = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    @property
    def key(self):
        import jax

        return jax.random.key(self.seed)

    def check(self, id: str, **kw):
        """Record a ledger entry (see :meth:`pdlt.Ledger.check`); returns it."""
        return self.ledger.check(id, **kw)

    def glue(self, name: str, value, display: bool = False):
        """Make ``value`` available to the prose as ``{glue:text}`name``` (MyST-NB glue); returns None."""
        if getattr(value, "shape", None) == ():  # numpy / JAX scalars -> plain Python numbers
            value = value.item()
        try:
            from myst_nb import glue
        except ImportError:  # plain Jupyter without myst-nb: nothing to glue into
            return
        glue(name, value, display=display)

    def results(self) -> dict:
        return {
            "chapter": self.chapter,
            "title": self.title,
            "params": self.params,
            "seed": self.seed,
            "started": self._started,
            "wall_s": round(time.perf_counter() - self._t0, 3),
            "provenance": provenance(),
            "ledger": self.ledger.to_list(),
        }

    def finish(self, show: bool = True):
        """Write the results file, show the ledger table, and raise if an entry is not as expected.

        Set ``PDLT_STRICT=0`` to render a chapter with failing entries instead of raising.
        """
        res = self.results()
        out = results_dir()
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{self.chapter}.json").write_text(json.dumps(res, indent=1, default=float))
        if show:
            try:
                from IPython.display import display

                display(ledger_frame(res["ledger"]))
            except ImportError:
                pass
        bad = self.ledger.failures()
        if bad and os.environ.get("PDLT_STRICT", "1") != "0":
            lines = [f"{e.id}: theory {e.theory:.6g}, measured {e.measured:.6g} ± {e.se:.2g} "
                     f"({e.rule}), expected to {e.expect}" for e in bad]
            raise AssertionError(f"{self.chapter}: {len(bad)} ledger entr{'y' if len(bad) == 1 else 'ies'} "
                                 "not as expected:\n" + "\n".join(lines))
        return res


def ledger_frame(entries):
    """A pandas table of ledger entries (dicts), for display."""
    import pandas as pd

    rows = []
    for e in entries:
        dev = e.get("deviation_sigma")
        verdict = LedgerEntry(**{k: e[k] for k in LedgerEntry.__dataclass_fields__}).verdict()
        rows.append({
            "chapter": e["chapter"], "id": e["id"], "equation": e["equation"], "quantity": e["quantity"],
            "theory": f"{e['theory']:.6g}",
            "measured": f"{e['measured']:.6g}" + (f" ± {e['se']:.2g}" if e["se"] else ""),
            "Δ/σ": "" if dev is None else f"{dev:+.2f}",
            "rule": e["rule"], "result": verdict,
        })
    return pd.DataFrame(rows)
