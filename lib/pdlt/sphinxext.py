"""Sphinx extension of the book: gallery, reading order, status page, launch buttons, read order.

Loaded by ``_config.yml`` (``sphinx.extra_extensions: [pdlt.sphinxext]``). It provides

- directives ``{pdlt-gallery}`` (one headline figure per executed chapter, linking to it),
  ``{pdlt-reading-order}`` (the parts and chapters of ``_toc.yml`` in order, with their ledger
  counts) and ``{pdlt-status}`` (per chapter: wall time, backend/device, dtype, library hash, seed,
  ledger entries, and committed full-scale results beside the CI ones). They are rendered at
  *write* time (``doctree-resolved``), after every chapter has been read and executed, from the
  results files the chapters wrote and from ``_toc.yml``, so a new chapter appears without any edit
  and the page's name does not need to sort after the chapters; pages using them are re-written on
  every build.
- the launch buttons: the theme builds Colab/Binder URLs to the ``.md`` source in the repository,
  which Colab cannot open; this points them at the generated notebooks
  ``<pdlt_launch_path>/<docname>.ipynb`` on branch ``pdlt_launch_branch`` (the published site),
  written at the end of the build by :mod:`pdlt.notebooks`. Notebook pages that are not chapters
  (no ``parameters`` cell) lose the launch buttons but keep the download of the executed notebook.
- ``pdlt_read_last``: docnames read (hence executed) after every other document, whatever their
  names sort as: pages whose code reads the chapters' results (the ledger).
- ``pdlt_execute_jobs`` (default: environment variable ``PDLT_BOOK_JOBS``, else the number of CPU
  cores up to 2): with ``execute_notebooks: cache``, the notebooks to be read are executed this many
  at a time into the notebook cache before Sphinx reads them (:func:`_execute_ahead`); 1 executes
  them one by one as Sphinx reads them. On a GPU, where each kernel claims most of the device's
  memory, set ``PDLT_BOOK_JOBS=1``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from html import escape
from pathlib import Path

import yaml
from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.util import logging
from sphinx.util.osutil import relative_uri

from ._ledger import LedgerEntry, anchor
from ._provenance import lib_hash
from ._runner import chapter_id, find_chapters

logger = logging.getLogger(__name__)

KINDS = ("gallery", "reading-order", "status", "ledger")


class pdlt_placeholder(nodes.General, nodes.Element):
    """Replaced at write time by the generated content of kind ``node["kind"]``."""


def _make_directive(kind):
    class _D(Directive):
        has_content = False

        def run(self):
            env = self.state.document.settings.env
            if not hasattr(env, "pdlt_dynamic"):
                env.pdlt_dynamic = set()
            env.pdlt_dynamic.add(env.docname)
            return [pdlt_placeholder(kind=kind)]

    _D.__name__ = f"Pdlt_{kind.replace('-', '_')}"
    return _D


# ----------------------------------------------------------------------------------- data
def results_dir(app) -> Path:
    """``$PDLT_RESULTS_DIR`` or ``<confdir>/_build/results`` (as :func:`pdlt.book.results_dir`)."""
    env = os.environ.get("PDLT_RESULTS_DIR")
    return Path(env) if env else Path(app.confdir) / "_build" / "results"


def _load(path: Path) -> dict | None:
    try:
        res = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return res if isinstance(res, dict) and isinstance(res.get("ledger"), list) else None


def load_results(folder: Path, ci: bool = True) -> dict[str, dict]:
    """``{chapter id: results}`` of every results JSON in ``folder`` (files without a ledger skipped),
    each with ``"_stale"``: the reasons it may not be this build's (:func:`pdlt.book.staleness`; with
    ``ci``, parameters other than the chapter's CI defaults count too). The pages list only chapters
    of ``_toc.yml``."""
    from .book import _chapter_source, staleness
    from ._runner import parameters_of

    out = {}
    for f in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        res = _load(f)
        if res is not None:
            res["_file"] = str(f)
            cid = res.get("chapter") or f.stem
            src = _chapter_source(cid) if ci else None
            specs = (parameters_of(src) or {}) if src is not None else None
            res["_stale"] = staleness(res, None if specs is None else {s.name: s.default for s in specs.values()})
            out[cid] = res
    return out


def toc_parts(app) -> list[tuple[str, list[str]]]:
    """``[(caption, [docname, ...]), ...]`` in reading order (the root page excluded)."""
    path = Path(getattr(app.config, "external_toc_path", "") or Path(app.confdir) / "_toc.yml")
    if not path.is_absolute():
        path = Path(app.confdir) / path
    toc = yaml.safe_load(path.read_text()) or {}

    def files(node) -> list[str]:
        out = []
        if isinstance(node, dict):
            if "file" in node:
                out.append(str(node["file"]).rsplit(".", 1)[0] if str(node["file"]).endswith((".md", ".ipynb"))
                           else str(node["file"]))
            for k in ("chapters", "sections"):
                out += files(node.get(k, []))
        elif isinstance(node, list):
            for v in node:
                out += files(v)
        return out

    if "parts" in toc:
        return [(p.get("caption", ""), files(p.get("chapters", []))) for p in toc["parts"]]
    return [("", files(toc.get("chapters", [])))]


def chapter_docnames(app) -> set[str]:
    """Docnames of the chapters: notebooks of ``_toc.yml`` with a ``parameters`` cell."""
    if not hasattr(app, "_pdlt_chapters"):
        root = Path(app.srcdir)
        app._pdlt_chapters = {p.resolve().relative_to(root.resolve()).with_suffix("").as_posix()
                              for p in find_chapters(root / "book")}
    return app._pdlt_chapters


def _title(app, docname: str) -> str:
    t = app.env.titles.get(docname)
    return t.astext() if t is not None else docname


_REQUIRED = [f.name for f in __import__("dataclasses").fields(LedgerEntry)
             if f.default is __import__("dataclasses").MISSING]


def _entry(e: dict) -> LedgerEntry | None:
    """The entry of a results-file dict, or None for a dict without the full record."""
    return LedgerEntry.from_dict(e) if all(k in e for k in _REQUIRED) else None


def _entry_ok(e: dict) -> bool:
    """``ok`` as the current ledger rules judge it (so results written before nulls existed show as
    lacking one); a dict without the full record keeps its own ``ok``."""
    le = _entry(e)
    return le.ok if le is not None else bool(e.get("ok"))


def _counts(res: dict) -> dict:
    """Counts of one chapter's ledger, kinds apart: consistency entries never count as verification."""
    led = res.get("ledger", [])
    kind = [e.get("kind") or ("measured" if e.get("se") else "exact") for e in led]
    tests = [(e, k) for e, k in zip(led, kind) if e.get("expect") == "pass"]
    return {
        "n": len(led),
        "ok": sum(_entry_ok(e) for e in led),
        "passed": sum(bool(e.get("passed")) for e, _ in tests),
        "verified": sum(bool(e.get("passed")) and k != "consistency" for e, k in tests),
        "measured": sum(k == "measured" for _, k in tests),
        "exact": sum(k == "exact" for _, k in tests),
        "consistency": sum(k == "consistency" for _, k in tests),
        "controls": sum(e.get("expect") == "fail" for e in led),
        "rejected": sum(e.get("expect") == "fail" and not e.get("passed") for e in led),
        "unpowered": [e.get("id", "?") for e in led if _entry(e) is not None and _entry(e).problem],
        "bad": [e.get("id", "?") for e in led if not _entry_ok(e)],
    }


def kinds_text(c: dict) -> str:
    """"12 measured, 3 exact against closed forms, 2 consistency (not counted)"-style text of counts."""
    parts = [f"{c['measured']} measured", f"{c['exact']} exact"]
    if c["consistency"]:
        parts.append(f"{c['consistency']} consistency (not counted as verification)")
    return ", ".join(parts)


def _summary(res: dict) -> str:
    c = _counts(res)
    stale = ("; NOT this build's result: " + "; ".join(res["_stale"])) if res.get("_stale") else ""
    if res.get("error"):
        return f"execution failed: {res['error']}" + stale
    head = (f"{c['verified']} checks verified ({kinds_text(c)}), "
            f"{c['rejected']}/{c['controls']} negative controls rejected")
    if not c["bad"]:
        return head + stale
    return head + f"; {len(c['bad'])} NOT as expected" + (f" ({len(c['unpowered'])} unpowered or without a null)"
                                                          if c["unpowered"] else "") + stale


# ----------------------------------------------------------------------------------- nodes
def _para(*parts) -> nodes.paragraph:
    p = nodes.paragraph()
    for x in parts:
        p += x if isinstance(x, nodes.Node) else nodes.Text(str(x))
    return p


def _link(app, fromdoc: str, todoc: str, text: str) -> nodes.reference:
    return nodes.reference("", text, internal=True, refuri=app.builder.get_relative_uri(fromdoc, todoc))


def _table(header, rows, classes=()) -> nodes.table:
    table = nodes.table(classes=["pdlt-table", *classes])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    for parent, cells in [(head, header)] + [(body, r) for r in rows]:
        row = nodes.row()
        for c in cells:
            entry = nodes.entry()
            entry += c if isinstance(c, nodes.Node) else _para(c)
            row += entry
        parent += row
    return table


def _runtime(app, docname: str) -> str:
    data = getattr(app.env, "nb_metadata", {}).get(docname, {}).get("exec_data") or {}
    rt = data.get("runtime")
    return "" if rt is None else f"{rt:.1f} s ({data.get('method', '')})"


# ----------------------------------------------------------------------------------- renderers
def render_gallery(app, fromdoc: str) -> list[nodes.Node]:
    results = load_results(results_dir(app))
    static = Path(app.outdir) / "_static" / "pdlt"
    here = app.builder.get_target_uri(fromdoc)
    cards = []
    for _, docs in toc_parts(app):
        for doc in docs:
            cid = chapter_id(Path(doc))
            if doc not in chapter_docnames(app) or cid not in results:
                continue
            res = results[cid]
            png = results_dir(app) / f"{cid}.png"
            cap_file = results_dir(app) / f"{cid}.headline.txt"
            img = ""
            if png.exists():
                static.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(png, static / png.name)
                src = relative_uri(here, f"_static/pdlt/{png.name}")
                img = f'<img src="{escape(src)}" alt="headline figure of {escape(_title(app, doc))}">'
            else:
                img = '<span class="pdlt-card-noimg">no headline figure (ch.headline(fig))</span>'
            caption = cap_file.read_text().strip() if cap_file.exists() else ""
            ok = not _counts(res)["bad"] and not res.get("error") and not res.get("_stale")
            cards.append(
                f'<a class="pdlt-card{"" if ok else " pdlt-card-bad"}" '
                f'href="{escape(app.builder.get_relative_uri(fromdoc, doc))}">{img}'
                f'<span class="pdlt-card-title">{escape(_title(app, doc))}</span>'
                + (f'<span class="pdlt-card-caption">{escape(caption)}</span>' if caption else "")
                + f'<span class="pdlt-card-meta">{escape(_summary(res))}</span></a>')
    if not cards:
        return [_para("No chapter has been executed yet: run ", nodes.literal(text="make book"), ".")]
    return [nodes.raw("", f'<div class="pdlt-gallery">{"".join(cards)}</div>', format="html")]


def render_reading_order(app, fromdoc: str) -> list[nodes.Node]:
    results = load_results(results_dir(app))
    out = []
    for caption, docs in toc_parts(app):
        docs = [d for d in docs if d != fromdoc]
        if not docs:
            continue
        if caption:
            out.append(nodes.rubric(text=caption))
        lst = nodes.bullet_list(classes=["pdlt-reading-order"])  # the titles carry their numbers
        for doc in docs:
            cid = chapter_id(Path(doc))
            item = nodes.list_item()
            extra = ""
            if doc in chapter_docnames(app):
                res = results.get(cid)
                extra = f" — {_summary(res)}" if res else " — not executed in this build"
            item += _para(_link(app, fromdoc, doc, _title(app, doc)), extra)
            lst += item
        out.append(lst)
    return out


def _cell(*lines) -> nodes.Node:
    """A table cell with one line per argument."""
    block = nodes.line_block()
    for ln in lines:
        block += ln if isinstance(ln, nodes.line) else nodes.line(text=str(ln))
    return block


def _row(app, fromdoc, doc, res, scale, current):
    prov = res.get("provenance", {})
    c = _counts(res)
    h = prov.get("lib_hash", "")
    started = str(res.get("started", ""))
    wall = res.get("wall_s")
    runner = res.get("runner_wall_s")
    times = ["" if wall is None else f"chapter {wall:.1f} s"]
    if runner is not None:
        times.append(f"runner {runner:.1f} s")
    elif scale == "CI" and doc and _runtime(app, doc):
        times.append(f"notebook {_runtime(app, doc)}")
    device = prov.get("backend", "?") + (f" / {prov['device_kind']}" if prov.get("device_kind") else "")
    if len(prov.get("devices") or []) > 1:
        device += f" ×{len(prov['devices'])}"
    name = _para(_link(app, fromdoc, doc, chapter_id(Path(doc))) if doc else res.get("chapter", "?"))
    bad = "none" if not c["bad"] and not res.get("error") else ", ".join(c["bad"]) or str(res.get("error"))
    stale = [w for w in res.get("_stale") or [] if not w.startswith("library ")]  # (the hash shows ≠ current)
    return [
        name, scale,
        _cell(started[:10], started[11:16] + (" " + started[19:] if len(started) > 19 else "")),
        _cell(*times),
        _cell(device, "float64" if prov.get("x64") else "float32"),
        _cell(h + ("" if not h or h == current else " (≠ current)"), f"seed {res.get('seed', '')}",
              *(["not this build's: " + "; ".join(stale)] if stale else [])),
        _cell(f"{c['verified']} / {c['measured'] + c['exact']} checks passed ({c['measured']} measured, "
              f"{c['exact']} exact)",
              f"{c['consistency']} consistency (not counted)",
              f"{c['rejected']} / {c['controls']} controls rejected"),
        bad,
    ]


def render_status(app, fromdoc: str) -> list[nodes.Node]:
    results = load_results(results_dir(app))
    full_dir = Path(app.confdir) / app.config.pdlt_full_results
    full = load_results(full_dir, ci=False)
    current = lib_hash()
    docs = [d for _, ds in toc_parts(app) for d in ds if d in chapter_docnames(app)]
    by_cid = {chapter_id(Path(d)): d for d in docs}
    header = ["chapter", "scale", "started", "wall time", "backend / device, dtype", "library hash, seed",
              "ledger", "not as expected"]
    rows = []
    for doc in docs:
        cid = chapter_id(Path(doc))
        if cid in results:
            rows.append(_row(app, fromdoc, doc, results[cid], "CI", current))
        else:
            rows.append([_para(_link(app, fromdoc, doc, cid)), "CI", "not executed"] + [""] * (len(header) - 3))
        if cid in full:
            rows.append(_row(app, fromdoc, doc, full[cid], "full", current))
    for cid, res in full.items():  # full-scale results of chapters not in this book's table of contents
        if cid not in by_cid:
            rows.append(_row(app, fromdoc, "", res, "full", current))
    entries = [e for r in results.values() for e in r["ledger"]]
    n_ok = sum(_entry_ok(e) for e in entries)
    out = [
        _para(f"Current library hash {current}. Last execution: {len(results)} chapter"
              f"{'' if len(results) == 1 else 's'}, {len(entries)} ledger entries, {n_ok} as expected and "
              f"{len(entries) - n_ok} not."),
        _table(header, rows, classes=["pdlt-status"]),
    ]
    prov = []
    for cid, res in sorted(full.items()):
        p = res.get("provenance", {})
        params = res.get("runner_params") or res.get("params") or {}
        prov.append(nodes.list_item("", _para(
            nodes.strong(text=cid), f": {Path(res['_file']).name}, started {res.get('started', '?')}, jax "
            f"{p.get('jax_version', '?')} on {', '.join(p.get('devices', [])) or '?'} ({p.get('machine', '?')}), "
            f"library {p.get('lib_hash', '?')}, parameters {json.dumps(params, sort_keys=True)}")))
    rel = Path(app.config.pdlt_full_results).as_posix()
    if prov:
        out += [nodes.rubric(text="Full-scale runs (provenance)"), nodes.bullet_list("", *prov)]
    else:
        out.append(_para(
            f"No full-scale results are committed yet. On a GPU, run ",
            nodes.literal(text="python -m pdlt.run all --scale full --out runs/full"),
            f" and commit each runs/full/<id>/results.json as {rel}/<id>.json; they then appear here "
            "beside the CI-scale rows."))
    return out


# ----------------------------------------------------------------------------------- the ledger page
LEDGER_COLUMNS = ("chapter", "id", "kind", "quantity", "theory", "measured ± SE", "tolerance", "null", "power",
                  "z", "verdict", "cell")


def _num(x, fmt=".4g") -> str:
    return "" if x is None else format(float(x), fmt)


def ledger_rows_html(entries, href=None) -> str:
    """Table rows (``<tr>``) of ledger entries (results-file dicts). ``href(chapter, anchor)`` gives
    the URL of the chapter cell that made the check (None: no link)."""
    import math

    rows = []
    for d in entries:
        e = LedgerEntry.from_dict(d)
        p, dev = e.power, e.deviation_sigma
        p_txt = "—" if p is None else ("∞" if math.isinf(p) else f"{p:.3g}")
        p_sort = "-1" if p is None else ("1e300" if math.isinf(p) else repr(p))
        null = "—" if e.null is None else _num(e.null) + (f" <span class='pdlt-null-label'>({escape(e.null_label)})"
                                                          "</span>" if e.null_label else "")
        verdict = e.verdict()
        url = href(e.chapter, e.anchor) if href else None
        link = f'<a href="{escape(url)}" title="the check in its chapter">check ↗</a>' if url else ""
        cls = "pdlt-ok" if e.ok else "pdlt-bad"
        cells = [
            (escape(e.chapter), None), (f"<code>{escape(e.id)}</code>", e.id), (escape(e.kind), None),
            (escape(e.quantity) + (f" <span class='pdlt-eq'>[{escape(e.equation)}]</span>" if e.equation else ""),
             None),
            (_num(e.theory), repr(e.theory)),
            (_num(e.measured) + (f" ± {e.se:.2g}" if e.se else ""), repr(e.measured)),
            (f"{e.tol:.2g}" + (f" <span class='pdlt-rule'>({escape(e.rule)})</span>" if e.rule else ""), repr(e.tol)),
            (null, "" if e.null is None else repr(e.null)), (p_txt, p_sort),
            ("" if dev is None else f"{dev:+.2f}", "" if dev is None else repr(dev)),
            (escape(verdict), None), (link, None),
        ]
        tds = "".join(f'<td data-sort="{escape(srt)}">{c}</td>' if srt is not None else f"<td>{c}</td>"
                      for c, srt in cells)
        rows.append(f'<tr class="{cls}" data-kind="{escape(e.kind)}" data-verdict="{"ok" if e.ok else "bad"}">'
                    f"{tds}</tr>")
    return "".join(rows)


def ledger_plots(entries, out_dir: Path) -> dict[str, str]:
    """The pull plot (z of measured entries expected to pass, against the standard normal) and the
    power plot (log10 power of entries that need power); PNG file names written into ``out_dir``."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out_dir.mkdir(parents=True, exist_ok=True)
    es = [LedgerEntry.from_dict(d) for d in entries]
    names = {}
    zs = np.array([e.deviation_sigma for e in es if e.kind == "measured" and e.expect == "pass" and e.se])
    fig, ax = plt.subplots(figsize=(5.2, 3.0), dpi=110)
    if len(zs):
        lim = max(5.0, float(np.ceil(np.max(np.abs(zs)))))
        ax.hist(zs, bins=np.linspace(-lim, lim, 41), density=True, color="0.7", label=f"{len(zs)} measured entries")
        u = np.linspace(-lim, lim, 400)
        ax.plot(u, np.exp(-u**2 / 2) / math.sqrt(2 * math.pi), "C3", label="standard normal")
        ax.axvline(-Z_RULE, color="0.4", ls=":", lw=1)
        ax.axvline(Z_RULE, color="0.4", ls=":", lw=1, label=f"±{Z_RULE:g} SE")
    ax.set_xlabel("z = (measured − theory) / SE")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "ledger-pull.png")
    plt.close(fig)
    names["pull"] = "ledger-pull.png"
    ps = [e.power for e in es if e.needs_power and e.power is not None]
    finite = np.array([p for p in ps if math.isfinite(p) and p > 0])
    fig, ax = plt.subplots(figsize=(5.2, 3.0), dpi=110)
    if len(finite):
        top = max(2.0, float(np.ceil(np.log10(finite.max()))))
        ax.hist(np.log10(finite), bins=np.linspace(min(-0.5, float(np.log10(finite.min()))), top, 40), color="0.7",
                label=f"{len(finite)} entries" + (f" (+{len(ps) - len(finite)} with infinite power)"
                                                  if len(ps) > len(finite) else ""))
    ax.axvline(0.0, color="C3", lw=1.2, label="power 1 (the rule could not reject the null)")
    ax.axvline(math.log10(2.0), color="C3", ls="--", lw=1, label="power 2")
    ax.set_xlabel("log10 power = log10 |theory − null| / tolerance")
    ax.set_ylabel("entries")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "ledger-power.png")
    plt.close(fig)
    names["power"] = "ledger-power.png"
    return names


Z_RULE = 4.5


def ledger_html(results: dict, href=None, titles=None, plot_uris=None) -> str:
    """The whole ledger page body: totals by kind, the two plots, and one collapsible, sortable,
    filterable table per chapter (the script ``pdlt-ledger.js`` does the sorting and filtering)."""
    titles = titles or {}
    entries = [e for r in results.values() for e in r.get("ledger", [])]
    tot = _counts({"ledger": entries})
    head = "".join(f"<th>{escape(h)}</th>" for h in LEDGER_COLUMNS)
    groups = []
    for cid, res in results.items():
        c = _counts(res)
        status = "all as expected" if not c["bad"] else f"{len(c['bad'])} NOT as expected"
        title = titles.get(cid, res.get("title", ""))
        groups.append(
            f'<details class="pdlt-ledger-group" id="ledger-{escape(cid)}"{" open" if c["bad"] else ""}>'
            f'<summary><span class="pdlt-cid">{escape(cid)}</span> {escape(title)} — {c["n"]} entries: '
            f'{escape(kinds_text(c))}, {c["controls"]} controls; {escape(status)}</summary>'
            f'<div class="pdlt-table-scroll"><table class="pdlt-ledger"><thead><tr>{head}</tr></thead>'
            f"<tbody>{ledger_rows_html(res.get('ledger', []), href)}</tbody></table></div></details>")
    plots = ""
    if plot_uris:
        plots = (
            '<div class="pdlt-ledger-plots">'
            f'<figure><img src="{escape(plot_uris["pull"])}" alt="pull plot of the measured entries">'
            "<figcaption>Pull plot: the deviations z of the measured entries expected to pass, against the "
            "standard normal (red). If the standard errors are right and the theory is true, the histogram "
            "follows the curve; a histogram much narrower than the curve means overstated errors, a wider one "
            "or a shifted one means understated errors or a biased theory.</figcaption></figure>"
            f'<figure><img src="{escape(plot_uris["power"])}" alt="power of the entries">'
            "<figcaption>Power plot: how far each entry's null (the value a wrong or trivial theory would give) "
            "lies outside its tolerance, on a log scale. Every entry right of the red line could have "
            "rejected its null; an entry left of it would be unpowered and fails its chapter.</figcaption>"
            "</figure></div>")
    controls = (
        '<div class="pdlt-ledger-controls"><label>filter <input type="search" class="pdlt-filter-text" '
        'placeholder="text in any column"></label> <label>kind <select class="pdlt-filter-kind">'
        '<option value="">all</option><option>measured</option><option>exact</option>'
        '<option>consistency</option></select></label> <label>outcome <select class="pdlt-filter-verdict">'
        '<option value="">all</option><option value="ok">as expected</option><option value="bad">not as '
        'expected</option></select></label> <button type="button" class="pdlt-open-all">open all</button> '
        '<button type="button" class="pdlt-close-all">close all</button> <span class="pdlt-filter-count"></span>'
        "</div>")
    summary = (
        f'<p class="pdlt-ledger-summary"><strong>{tot["n"]} entries from {len(results)} chapters.</strong> '
        f'{tot["verified"]} checks verified: {tot["measured"]} <em>measured</em> (theory against an independent '
        f'ensemble or training run, with its standard error) and {tot["exact"]} <em>exact</em> (numerics against '
        f'a closed form derived independently, no sampling); {tot["consistency"]} <em>consistency</em> entries '
        "(our own algebra computed two ways) are shown but not counted as verification; "
        f'{tot["rejected"]} of {tot["controls"]} negative controls rejected; '
        f'{len(tot["bad"])} entries not as expected'
        + (f', of them {len(tot["unpowered"])} unpowered or without a null' if tot["unpowered"] else "")
        + ".</p>")
    return (f'<div class="pdlt-ledger-app">{summary}{plots}{controls}{"".join(groups)}</div>')


def render_ledger(app, fromdoc: str) -> list[nodes.Node]:
    results = load_results(results_dir(app))
    if not results:
        return [_para("No chapter has been executed yet: run ", nodes.literal(text="make book"), ".")]
    docs = {chapter_id(Path(d)): d for _, ds in toc_parts(app) for d in ds if d in chapter_docnames(app)}
    order = {cid: i for i, cid in enumerate(docs)}
    # only chapters of the table of contents, in reading order
    results = dict(sorted(((k, v) for k, v in results.items() if k in docs), key=lambda kv: order[kv[0]]))
    stale = {cid: r["_stale"] for cid, r in results.items() if r.get("_stale")}

    def href(cid, anc):
        doc = docs.get(cid)
        return None if doc is None else f"{app.builder.get_relative_uri(fromdoc, doc)}#{anc}"

    entries = [e for r in results.values() for e in r.get("ledger", [])]
    names = ledger_plots(entries, Path(app.outdir) / "_static" / "pdlt")
    here = app.builder.get_target_uri(fromdoc)
    uris = {k: relative_uri(here, f"_static/pdlt/{v}") for k, v in names.items()}
    titles = {cid: _title(app, doc) for cid, doc in docs.items()}
    out = [nodes.raw("", ledger_html(results, href, titles, uris), format="html")]
    if stale:
        out.insert(0, _para("Not this build's results (other library, versions, parameters or unfinished): "
                            + "; ".join(f"{c}: {', '.join(w)}" for c, w in stale.items())))
    return out


RENDER = {"gallery": render_gallery, "reading-order": render_reading_order, "status": render_status,
          "ledger": render_ledger}


# ----------------------------------------------------------------------------------- events
def _read_last(app, env, docnames):
    for doc in app.config.pdlt_read_last:
        if doc in docnames:
            docnames.remove(doc)
            docnames.append(doc)


def _outdated(app, env, added, changed, removed):
    return sorted(getattr(env, "pdlt_dynamic", set()) - set(removed))


def _purge(app, env, docname):
    getattr(env, "pdlt_dynamic", set()).discard(docname)


def _merge(app, env, docnames, other):
    if not hasattr(env, "pdlt_dynamic"):
        env.pdlt_dynamic = set()
    env.pdlt_dynamic |= getattr(other, "pdlt_dynamic", set()) & set(docnames)


def _resolve(app, doctree, docname):
    for node in list(doctree.findall(pdlt_placeholder)):
        if app.builder.format != "html":
            node.replace_self([])
            continue
        node.replace_self(RENDER[node["kind"]](app, docname))


def _repo(app) -> tuple[str, str]:
    url = app.config.html_theme_options.get("repository_url", "")
    if "github.com/" not in url:
        return "", ""
    org, repo = url.split("github.com/", 1)[1].strip("/").split("/")[:2]
    return org, repo.removesuffix(".git")


def launch_urls(app, docname: str) -> dict[str, str]:
    """Colab and Binder URLs of the generated notebook of ``docname`` (empty without a GitHub repo)."""
    org, repo = _repo(app)
    if not org:
        return {}
    opts = app.config.html_theme_options.get("launch_buttons", {})
    branch = app.config.pdlt_launch_branch
    path = f"{app.config.pdlt_launch_path.strip('/')}/{docname}.ipynb"
    urls = {}
    if opts.get("colab_url"):
        urls["Colab"] = f"{opts['colab_url'].rstrip('/')}/github/{org}/{repo}/blob/{branch}/{path}"
    if opts.get("binderhub_url"):
        ui = "lab/tree" if opts.get("notebook_interface") == "jupyterlab" else "tree"
        urls["Binder"] = f"{opts['binderhub_url'].rstrip('/')}/v2/gh/{org}/{repo}/{branch}?urlpath={ui}/{path}"
    return urls


def _launch_buttons(app, pagename, templatename, context, doctree):
    buttons = context.get("header_buttons")
    if not buttons:
        return
    for group in [b for b in buttons if b.get("label") == "launch-buttons"]:
        urls = launch_urls(app, pagename) if pagename in chapter_docnames(app) else {}
        group["buttons"] = [dict(b, url=urls[b["text"]]) for b in group.get("buttons", []) if b.get("text") in urls]
        if not group["buttons"]:
            buttons.remove(group)


CSS = """
.pdlt-gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 22rem), 1fr)); gap: 1rem;
  margin: 1rem 0 1.5rem; }
.pdlt-card { display: flex; flex-direction: column; border: 1px solid var(--pst-color-border, #ddd);
  border-radius: .4rem; padding: .6rem; text-decoration: none !important; color: inherit !important;
  background: var(--pst-color-background, #fff); }
.pdlt-card:hover { box-shadow: 0 2px 8px rgba(0, 0, 0, .15); }
.pdlt-card img { width: 100%; height: auto; margin-bottom: .4rem; background: #fff; }
.pdlt-card-title { font-weight: 600; }
.pdlt-card-caption { font-size: .9em; margin-top: .2rem; }
.pdlt-card-meta { font-size: .8em; color: var(--pst-color-text-muted, #666); margin-top: .3rem; }
.pdlt-card-bad .pdlt-card-meta { color: #b00020; font-weight: 600; }
.pdlt-card-noimg { font-size: .8em; color: #999; padding: 2rem 0; text-align: center; }
table.pdlt-status { font-size: .8em; }
table.pdlt-status td, table.pdlt-status th { padding: .3em .4em; }
table.pdlt-status .line-block { margin: 0; }
.pdlt-rerun table { font-size: .9em; }
.pdlt-table-scroll, .pdlt-checks-wrap { overflow-x: auto; max-width: 100%; }
table.pdlt-ledger, table.pdlt-checks { font-size: .78em; border-collapse: collapse; width: 100%; }
table.pdlt-ledger td, table.pdlt-ledger th, table.pdlt-checks td, table.pdlt-checks th {
  padding: .25em .4em; border-bottom: 1px solid var(--pst-color-border, #ddd); vertical-align: top; }
table.pdlt-ledger { min-width: 70em; }
table.pdlt-checks { min-width: 56em; }
table.pdlt-ledger td:nth-child(4), table.pdlt-checks td:nth-child(3) { min-width: 14em; overflow-wrap: anywhere; }
table.pdlt-ledger td:nth-child(2), table.pdlt-checks td:nth-child(1) { min-width: 9em; }
table.pdlt-ledger code, table.pdlt-checks code { overflow-wrap: anywhere; white-space: normal; }
table.pdlt-ledger th { cursor: pointer; white-space: nowrap; position: sticky; top: 0;
  background: var(--pst-color-background, #fff); }
table.pdlt-ledger th[aria-sort="ascending"]::after { content: " ▲"; }
table.pdlt-ledger th[aria-sort="descending"]::after { content: " ▼"; }
tr.pdlt-bad td { color: #b00020; font-weight: 600; }
.pdlt-eq, .pdlt-rule, .pdlt-null-label { color: var(--pst-color-text-muted, #666); font-size: .9em; }
details.pdlt-ledger-group { margin: .4em 0; border: 1px solid var(--pst-color-border, #ddd); border-radius: .3em; }
details.pdlt-ledger-group > summary { cursor: pointer; padding: .35em .5em; font-size: .9em; }
.pdlt-cid { font-family: var(--pst-font-family-monospace, monospace); font-weight: 600; }
.pdlt-ledger-controls { display: flex; flex-wrap: wrap; gap: .5em 1em; align-items: center; margin: .6em 0;
  font-size: .9em; }
.pdlt-ledger-plots { display: flex; flex-wrap: wrap; gap: 1em; }
.pdlt-ledger-plots figure { flex: 1 1 20em; max-width: 36em; margin: 0; }
.pdlt-ledger-plots img { width: 100%; height: auto; }
.pdlt-ledger-plots figcaption { font-size: .85em; }
@media print {
  .pdlt-ledger-controls { display: none; }
  .pdlt-table-scroll, .pdlt-checks-wrap { overflow: visible; }
  table.pdlt-ledger, table.pdlt-checks { min-width: 0; font-size: 6.5pt; table-layout: auto; }
  table.pdlt-ledger td:nth-child(4), table.pdlt-checks td:nth-child(3) { min-width: 8em; }
  table.pdlt-ledger td:nth-child(2), table.pdlt-checks td:nth-child(1) { min-width: 0; }
  table.pdlt-ledger th { position: static; }
  div.highlight pre, div.cell_output pre { white-space: pre-wrap; overflow-wrap: anywhere; }
}
"""


def _finished(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    from .notebooks import repository_url, write_launch_notebooks

    out = Path(app.outdir)
    (out / "_static").mkdir(parents=True, exist_ok=True)
    (out / "_static" / "pdlt.css").write_text(CSS)
    for f in sorted((Path(app.srcdir) / "book" / "_static").glob("*")):  # the book's own static assets
        if f.is_file():
            shutil.copyfile(f, out / "_static" / f.name)
    url = app.config.html_theme_options.get("repository_url") or repository_url(Path(app.confdir))
    written = write_launch_notebooks(Path(app.srcdir), out / app.config.pdlt_launch_path, url)
    logger.info(f"pdlt: {len(written)} launch notebooks in {out / app.config.pdlt_launch_path}")


_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|ref|doc|cite:p|cite:t|cite|eq|numref):`([^`]*)`")


def docstring_problems(obj, what: str = "function") -> str:
    """The docutils warnings and errors of ``obj``'s docstring as the API pages render it ("" if none).

    The docstring goes through napoleon (Google-style sections) and is parsed by docutils at warning
    level; Sphinx cross-reference roles are read as literals (docutils alone does not know them) and
    the ``attribute`` directive napoleon writes for classes is accepted. The book builds with warnings
    as errors, so a docstring with problems breaks its build.
    """
    import inspect
    import io

    import docutils.core
    from docutils.parsers.rst import directives
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import GoogleDocstring

    doc = getattr(obj, "__doc__", None)
    if not doc:
        return ""
    lines = GoogleDocstring(inspect.cleandoc(doc), Config(), what=what).lines()
    text = _ROLE.sub(lambda m: "``" + m.group(1) + "``", "\n".join(lines))
    if directives._directives.get("attribute") is None:
        directives.register_directive("attribute", _Attribute)
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document
    from sphinx.ext.autosummary import extract_summary

    # the one-line summary of the autosummary tables is cut from the docstring on its own
    summary = extract_summary(inspect.cleandoc(doc).split("\n"), new_document("", get_default_settings(Parser)))
    err = io.StringIO()
    for t in (text, _ROLE.sub(lambda m: "``" + m.group(1) + "``", summary)):
        docutils.core.publish_doctree(t, settings_overrides={"report_level": 2, "halt_level": 5,
                                                             "warning_stream": err})
    return err.getvalue().strip()


class _Attribute(Directive):
    """Stand-in for Sphinx's ``attribute`` directive when docutils parses a docstring on its own."""
    has_content = True
    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {"type": lambda v: v, "value": lambda v: v}

    def run(self):
        return []


def _api_docstring(app, what, name, obj, options, lines):
    """API pages: a constant shows no docstring of its type (``dict``'s, ``float``'s), only its own."""
    if what in ("data", "attribute") and getattr(obj, "__doc__", None) == type(obj).__doc__:
        lines[:] = []


def _connect_autodoc(app):
    if "sphinx.ext.autodoc" in app.extensions:
        app.connect("autodoc-process-docstring", _api_docstring)
        # cross-references from docstrings to names documented elsewhere (or not at all) stay plain text
        app.config.nitpick_ignore_regex = list(app.config.nitpick_ignore_regex) + [(r"py:.*", r".*")]


def setup(app):
    app.connect("builder-inited", _connect_autodoc)
    # the book build is the one writer of the book's results: the kernels it starts inherit these
    # (a chapter run elsewhere writes to runs/, see pdlt.book.results_dir)
    from ._provenance import build_hash

    os.environ.setdefault("PDLT_RESULTS_DIR", str(Path(app.confdir) / "_build" / "results"))
    os.environ["PDLT_BOOK_BUILD"] = build_hash()
    app.add_config_value("pdlt_read_last", [], "env")
    app.add_config_value("pdlt_launch_branch", "gh-pages", "html")
    app.add_config_value("pdlt_launch_path", "notebooks", "html")
    app.add_config_value("pdlt_full_results", "book/results/full", "env")
    app.add_node(pdlt_placeholder)
    for kind in KINDS:
        app.add_directive(f"pdlt-{kind}", _make_directive(kind))
    app.add_css_file("pdlt.css")
    app.add_js_file("pdlt-ledger.js", defer="defer")
    app.add_config_value("pdlt_execute_jobs", int(os.environ.get("PDLT_BOOK_JOBS", "0") or 0)
                         or min(2, os.cpu_count() or 1), "env")
    app.connect("env-before-read-docs", _read_last)
    app.connect("env-before-read-docs", _execute_ahead, priority=900)
    app.connect("env-updated", _complete_executed)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _resolve)
    app.connect("html-page-context", _launch_buttons, priority=502)
    app.connect("build-finished", _finished)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}


def _execute_ahead(app, env, docnames):
    """Execute the notebooks about to be read, ``pdlt_execute_jobs`` at a time, into the notebook cache.

    myst-nb executes a notebook when Sphinx reads it, one after another. With the ``cache``
    execution mode this runs first: every notebook among ``docnames`` that is not in the cache and
    not in ``pdlt_read_last`` is executed by a pool of ``pdlt_execute_jobs`` workers (each a kernel
    of its own), the slowest of the last build first, and its outputs are stored under the same
    hash myst-nb looks up, so the read phase only merges them. A notebook that fails is not cached:
    myst-nb executes it again and reports the error as usual. Each kernel runs alone in its process,
    so the numbers are those of a serial build.
    """
    jobs = int(app.config.pdlt_execute_jobs or 1)
    if jobs < 2 or app.config.nb_execution_mode != "cache":
        return
    from concurrent.futures import ThreadPoolExecutor

    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution
    from myst_nb.core.read import is_myst_markdown_notebook, read_myst_markdown_notebook

    cache = _notebook_cache(app)
    late = set(app.config.pdlt_read_last)
    todo = []
    for doc in docnames:
        path = Path(env.doc2path(doc))
        if doc in late or path.suffix != ".md":
            continue
        text = path.read_text("utf8")
        if not is_myst_markdown_notebook(text):
            continue
        nb = read_myst_markdown_notebook(text, add_source_map=True, path=str(path))
        try:
            cache.match_cache_notebook(nb)
            continue
        except KeyError:
            todo.append((doc, path, nb))
    if len(todo) < 2:
        return
    results = Path(os.environ.get("PDLT_RESULTS_DIR", ""))

    def last_time(item):
        try:
            return -float(json.loads((results / f"{chapter_id(item[1])}.json").read_text())["wall_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    todo.sort(key=last_time)
    logger.info(f"[pdlt] executing {len(todo)} notebooks, {jobs} at a time")

    def run(item):
        doc, path, nb = item
        return item, single_nb_execution(nb, cwd=str(path.parent), allow_errors=app.config.nb_execution_allow_errors,
                                          timeout=app.config.nb_execution_timeout, meta_override=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for (doc, path, nb), res in pool.map(run, todo):
            if res.err is not None:
                logger.info(f"[pdlt] {doc} failed ahead of the read ({res.err.__class__.__name__}); "
                            "it is executed again when read")
                continue
            cache.cache_notebook_bundle(CacheBundleIn(nb, str(path), data={"execution_seconds": res.time}),
                                        check_validity=False, overwrite=True)
            logger.info(f"[pdlt] executed {doc} in {res.time:.1f} s")


def _complete_executed(app, env):
    """Give the executed-notebook downloads their outputs when myst-nb took them from the cache.

    On a cache hit myst-nb renders the cached outputs but writes the notebook as read, without them,
    to ``jupyter_execute/`` (whence the theme copies the page's ``.ipynb`` download). Every such file
    whose code cells have no outputs and whose code matches a cached execution is rewritten with the
    cached outputs merged in.
    """
    if app.config.nb_execution_mode != "cache":
        return
    import nbformat

    root = Path(app.outdir).parent / "jupyter_execute"
    cache = _notebook_cache(app)
    for f in sorted(root.rglob("*.ipynb")):
        nb = nbformat.read(f, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if not code or any(c.get("outputs") for c in code):
            continue
        try:
            _, merged = cache.merge_match_into_notebook(nb)
        except KeyError:
            continue
        tmp = f.with_name(f.name + ".tmp")
        nbformat.write(merged, tmp)
        os.replace(tmp, f)


def _notebook_cache(app):
    """The jupyter-cache myst-nb reads (``nb_execution_cache_path``, else ``_build/.jupyter_cache``)."""
    from jupyter_cache import get_cache

    return get_cache(app.config.nb_execution_cache_path or str(Path(app.outdir).parent / ".jupyter_cache"))
