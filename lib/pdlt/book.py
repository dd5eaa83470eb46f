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

__all__ = ["Chapter", "results_dir", "ledger_frame", "headline_path", "rerun_box", "RerunBox"]


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

    def headline(self, fig, caption: str = "", dpi: int = 110):
        """Save ``fig`` as this chapter's headline figure (theory against ensemble) for the front page.

        Writes ``<results dir>/<chapter>.png`` (and the one-line ``caption``, if any, beside it as
        ``<chapter>.headline.txt``); the book's gallery (``pdlt.sphinxext``) shows it with a link to
        the chapter. Call it in the cell that draws the figure (it returns None, so that it prints
        nothing); nothing is written where there is no results directory (e.g. on Colab).
        """
        out = headline_path(self.chapter)
        if out is None:
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=dpi, bbox_inches="tight")
        cap = out.with_name(f"{self.chapter}.headline.txt")
        if caption:
            cap.write_text(caption.strip() + "\n")
        elif cap.exists():
            cap.unlink()

    def rerun_box(self):
        """The "Rerun with other parameters" box of this chapter (see :func:`rerun_box`).

        Its note also says how long this execution took so far and where it ran (measured, never
        typed into the prose), so a reader knows what a rerun at these parameters costs.
        """
        box = rerun_box(self.chapter, values=self.params)
        prov = provenance()
        dev = prov.get("device_kind") or prov.get("backend", "")
        box.note = (f"This execution took {time.perf_counter() - self._t0:.0f} s of wall time up to this box "
                    f"on {prov.get('backend', '?')} ({dev}), in "
                    f"{'float64' if prov.get('x64') else 'float32'}; the status page lists every chapter's time. "
                    + box.note).strip()
        return box


def headline_path(chapter: str) -> Path | None:
    """Where :meth:`Chapter.headline` writes a chapter's headline PNG (None without a results dir)."""
    d = results_dir()
    return None if d is None else d / f"{chapter}.png"


def _find_root(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").exists():
            return d
    return None


def _chapter_source(chapter: str) -> Path | None:
    """``book/<chapter>_*.md`` of the checkout above the working directory (None if not found)."""
    root = _find_root()
    dirs = [Path.cwd()] + ([root / "book"] if root is not None else [])
    for d in dirs:
        hits = sorted(d.glob(f"{chapter}_*.md")) + sorted(d.glob(f"{chapter}.md"))
        if hits:
            return hits[0].resolve()
    return None


class RerunBox:
    """A chapter's parameters (name, type, default, full scale, meaning) and the runner commands.

    Displays as an HTML admonition in Jupyter and in the book, and as plain text elsewhere.
    """

    def __init__(self, chapter: str, rows: list[tuple], commands: list[tuple[str, str]], note: str = ""):
        self.chapter, self.rows, self.commands, self.note = chapter, rows, commands, note

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{h}</th>" for h in ("parameter", "type", "default (CI)", "full scale", "meaning"))
        body = "".join(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (f"<code>{escape(n)}</code>", escape(t),
                                                        f"<code>{escape(repr(d))}</code>",
                                                        "" if f is None else f"<code>{escape(repr(f))}</code>",
                                                        escape(h))) + "</tr>"
            for n, t, d, f, h in self.rows)
        cmds = "".join(f"<p>{escape(what)}</p><pre><code>{escape(cmd)}</code></pre>" for what, cmd in self.commands)
        note = f"<p>{escape(self.note)}</p>" if self.note else ""
        return ('<div class="admonition tip pdlt-rerun" id="rerun-with-other-parameters">'
                '<p class="admonition-title">Rerun with other parameters</p>'
                f'<table class="table pdlt-rerun-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
                f"{cmds}{note}</div>")

    def __repr__(self) -> str:
        lines = [f"Rerun {self.chapter} with other parameters:"]
        lines += [f"  {n}: {t} = {d!r}" + ("" if f is None else f" (full scale {f!r})") + f"  # {h}"
                  for n, t, d, f, h in self.rows]
        lines += [f"{what}\n  {cmd}" for what, cmd in self.commands]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def rerun_box(chapter: str, source: str | Path | None = None, values: dict | None = None) -> RerunBox:
    """The "Rerun with other parameters" box of a chapter, generated from its ``parameters`` cell.

    Reads the chapter's own source (``book/<chapter>_*.md``, found from the working directory, or
    ``source``) with :func:`pdlt.run.parameters_of`, so names, types, defaults and meanings are
    never typed twice; adds the full-scale values of ``book/params/<chapter>.full.yaml`` if it
    exists, and the exact runner commands. Where the source is not at hand (a generated notebook on
    Colab), it falls back to the names and values in ``values``. Put ``ch.rerun_box()`` as the last
    line of a chapter's last cell.
    """
    import yaml

    from .run import parameters_of

    path = Path(source) if source is not None else _chapter_source(chapter)
    if path is None or not path.exists():
        rows = [(k, type(v).__name__, v, None, "") for k, v in (values or {}).items()]
        note = ("The chapter's source is not beside this notebook: edit the parameters cell at the top, "
                "or clone the repository to use the runner.")
        return RerunBox(chapter, rows, [("From a clone of the repository:",
                                         f"python -m pdlt.run {chapter} -p NAME VALUE")], note)
    specs = parameters_of(path) or {}
    full_file = path.parent / "params" / f"{chapter}.full.yaml"
    full = (yaml.safe_load(full_file.read_text()) or {}) if full_file.exists() else {}
    rows = [(s.name, s.type, s.default, full.get(s.name), s.help) for s in specs.values()]
    rel = f"book/{path.name}"
    example = next((s for s in specs.values() if s.name != "seed"), None) or next(iter(specs.values()), None)
    cmds = [("From the repository root, with any parameters changed (each -p NAME VALUE is checked "
             "against the table before anything runs):",
             f"python -m pdlt.run {rel}" + (f" -p {example.name} {_cli(example.default)}" if example else "")
             )]
    if full:
        cmds.append(("At full scale (sized for one GPU; the values of the full-scale column):",
                     f"python -m pdlt.run {chapter} --scale full --out runs/full"))
    note = (f"Each run writes runs/{chapter}/{chapter}.ipynb (the executed notebook) and "
            f"runs/{chapter}/results.json (parameters, provenance and ledger). In Jupyter (make lab), "
            "edit the parameters cell instead.")
    return RerunBox(chapter, rows, cmds, note)


def _cli(value) -> str:
    """A value as the runner's -p expects it (YAML)."""
    return value if isinstance(value, str) else json.dumps(value).replace(" ", "")


def ledger_frame(entries):
    """A pandas table of ledger entries (dicts), for display."""
    import pandas as pd

    rows = []
    for e in entries:
        dev = e.get("deviation_sigma")
        verdict = LedgerEntry(**{k: e[k] for k in LedgerEntry.__dataclass_fields__ if k in e}).verdict()
        rows.append({
            "chapter": e["chapter"], "id": e["id"], "equation": e["equation"], "quantity": e["quantity"],
            "theory": f"{e['theory']:.6g}",
            "measured": f"{e['measured']:.6g}" + (f" ± {e['se']:.2g}" if e["se"] else ""),
            "Δ/σ": "" if dev is None else f"{dev:+.2f}",
            "rule": e["rule"], "result": verdict,
        })
    return pd.DataFrame(rows)
