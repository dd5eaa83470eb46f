"""What a chapter notebook needs beside the mathematics: parameters, ledger, glue, results file.

A chapter starts with::

    ch = pdlt.book.Chapter("ch02", seed=seed, widths=widths, n_nets=n_nets)

which validates the parameters (same rules as the runner), switches on float64, and gives:
``ch.key`` (the chapter's root PRNG key from ``seed``), ``ch.check(...)`` (a ledger entry),
``ch.glue(name, value)`` (a number for the prose), and ``ch.finish()`` (shows the chapter's
ledger table, writes ``<results dir>/<chapter>.json`` and fails on any unexpected outcome).

The results directory is ``$PDLT_RESULTS_DIR`` if set, else ``runs/interactive`` beside the
book's ``_toc.yml`` found above the working directory (a chapter run in Jupyter or by hand with
Papermill), else nothing is written. Only the book build writes the book's ``_build/results``:
its extension (:mod:`pdlt.sphinxext`) sets ``PDLT_RESULTS_DIR`` (and the token
``PDLT_BOOK_BUILD``) for the kernels it starts, and ``pdlt.run`` sets it to its run directory.

A results file records its ``state``: ``running`` from the moment a chapter starts (the previous
file and headline figure are replaced then, so a chapter that fails or is interrupted never leaves
an older result looking current), ``done`` when :meth:`Chapter.finish` wrote the ledger. Every file
is written atomically (temporary name, ``os.replace``) as strict JSON (non-finite numbers become
``null``, listed under ``nonfinite``). :func:`book_results` reads the results of the chapters of
``_toc.yml`` only, each with the reasons (:func:`staleness`) it may not match the current build.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import _params
from ._ledger import Ledger, LedgerEntry
from ._provenance import atomic_savefig, atomic_write, dumps, lib_hash, provenance, versions

__all__ = ["Chapter", "results_dir", "ledger_frame", "headline_path", "rerun_box", "RerunBox", "book_results",
           "staleness"]


def results_dir() -> Path | None:
    """``$PDLT_RESULTS_DIR``, else ``<checkout>/runs/interactive`` (never the book's ``_build/results``)."""
    env = os.environ.get("PDLT_RESULTS_DIR")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").exists():
            return d / "runs" / "interactive"
    return None


class Chapter:
    """One executed chapter: its parameters, ledger and provenance."""

    def __init__(self, chapter: str, *, title: str = "", x64: bool = True, **params):
        _params.validate(params)
        self._check_rules(chapter, params)
        import jax

        if x64:
            jax.config.update("jax_enable_x64", True)
        self.chapter, self.title, self.params = chapter, title, dict(params)
        self.seed = int(params.get("seed", 0))
        self.ledger = Ledger(chapter)
        self._started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._mark_running()
        self._t0 = time.perf_counter()

    @staticmethod
    def _check_rules(chapter, params):
        """The chapter's cross-parameter rules (``# rule:`` lines of its parameters cell), where its
        source is at hand (the runner checked them already; this catches edits made in Jupyter)."""
        src = _chapter_source(chapter)
        if src is None:
            return
        from ._runner import parameters_of

        specs = parameters_of(src) or {}
        rules = [r for r in getattr(specs, "rules", ()) if r.kind == "rule"]
        merged = {s.name: s.default for s in specs.values()} | dict(params)
        for r in rules:
            r.check(merged)

    def _mark_running(self):
        """Replace the previous results of this chapter by a ``running`` record and drop its headline."""
        out = results_dir()
        if out is None:
            return
        for name in (f"{self.chapter}.png", f"{self.chapter}.headline.txt"):
            try:
                (out / name).unlink()
            except FileNotFoundError:
                pass
        atomic_write(out / f"{self.chapter}.json", dumps({
            "chapter": self.chapter, "title": self.title, "state": "running", "params": self.params,
            "seed": self.seed, "started": self._started, "pid": os.getpid(),
            "provenance": {"lib_hash": lib_hash(), "versions": versions()}, "ledger": []}))

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
            "state": "done",
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
            atomic_write(out / f"{self.chapter}.json", dumps(res))
        if show:
            try:
                from IPython.display import display

                display(ledger_frame(res["ledger"]))
            except ImportError:
                pass
        bad = self.ledger.failures()
        if bad and os.environ.get("PDLT_STRICT", "1") != "0":
            lines = [f"{e.id}: theory {e.theory:.6g}, measured {e.measured:.6g} ± {e.se:.2g} "
                     f"({e.rule}), expected to {e.expect}" + (f"; {e.problem}" if e.problem else "") for e in bad]
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
        atomic_savefig(fig, out, dpi=dpi, bbox_inches="tight")
        cap = out.with_name(f"{self.chapter}.headline.txt")
        if caption:
            atomic_write(cap, caption.strip() + "\n")
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

    from ._runner import parameters_of

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


def _g(v, fmt=".6g") -> str:
    """A number for a table; ``None`` (a non-finite value in strict JSON) shows as ``non-finite``."""
    return "non-finite" if v is None else format(v, fmt)


def ledger_frame(entries):
    """A pandas table of ledger entries (dicts), for display."""
    import pandas as pd

    rows = []
    for e in entries:
        dev = e.get("deviation_sigma")
        verdict = LedgerEntry(**{k: e[k] for k in LedgerEntry.__dataclass_fields__ if k in e}).verdict()
        rows.append({
            "chapter": e["chapter"], "id": e["id"], "equation": e["equation"], "quantity": e["quantity"],
            "theory": _g(e["theory"]),
            "measured": _g(e["measured"]) + (f" ± {_g(e['se'], '.2g')}" if e["se"] else ""),
            "Δ/σ": "" if dev is None else f"{dev:+.2f}",
            "rule": e["rule"], "result": verdict,
        })
    return pd.DataFrame(rows)


def staleness(res: dict, defaults: dict | None = None, *, current_hash: str | None = None,
              current_versions: dict | None = None) -> list[str]:
    """Why a results record may not be this build's: not finished (``state``), another library hash,
    other JAX/dependency versions, or parameters other than ``defaults`` (the chapter's CI values).
    An empty list means it matches."""
    why = []
    state = res.get("state", "done")
    if state != "done":
        why.append(f"state {state}")
    prov = res.get("provenance") or {}
    h = current_hash or lib_hash()
    if prov.get("lib_hash") and prov["lib_hash"] != h:
        why.append(f"library {prov['lib_hash']} (build {h})")
    cur = current_versions or versions()
    theirs = prov.get("versions") or ({"jax": prov["jax_version"]} if prov.get("jax_version") else {})
    diff = [f"{k} {v} (build {cur[k]})" for k, v in sorted(theirs.items()) if k in cur and cur[k] != v]
    why += diff
    if defaults is not None:
        params = res.get("params") or {}
        changed = [k for k in params if k in defaults and params[k] != defaults[k]
                   and not (isinstance(params[k], (int, float)) and isinstance(defaults[k], (int, float))
                            and float(params[k]) == float(defaults[k]))]
        if changed:
            why.append("parameters " + ", ".join(f"{k}={params[k]!r} (default {defaults[k]!r})" for k in changed))
    return why


def book_results(folder: Path | None = None, root: Path | None = None) -> dict[str, dict]:
    """``{chapter id: results}`` of the chapters in the book's ``_toc.yml`` (files of other chapters,
    e.g. left by a run into the same folder, are ignored), each with ``"_stale"``: :func:`staleness`
    against the build's library hash, versions and the chapter's CI defaults."""
    from ._runner import chapter_id, find_chapters, parameters_of

    root = root or _find_root()
    folder = Path(folder) if folder is not None else results_dir()
    if root is None or folder is None or not folder.is_dir():
        return {}
    h, v = lib_hash(), versions()
    out = {}
    for path in find_chapters(root / "book"):
        cid = chapter_id(path)
        f = folder / f"{cid}.json"
        try:
            res = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(res, dict) or not isinstance(res.get("ledger"), list):
            continue
        specs = parameters_of(path) or {}
        res["_stale"] = staleness(res, {s.name: s.default for s in specs.values()}, current_hash=h,
                                  current_versions=v)
        out[cid] = res
    return out


# the ledger, parameters, provenance, runner and launch notebooks: re-exported by the layout table
from ._layout import populate as _populate  # noqa: E402

__all__ = __all__ + [n for n in _populate(globals(), "book") if n not in __all__]
