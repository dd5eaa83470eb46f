"""The results ledger: tolerance rule, kinds, nulls, power, and soundness (unpowered entries fail)."""
import json
import math
from pathlib import Path

import pytest

from pdlt.book.internals import ledger as _ledger
from pdlt.book import Ledger, LedgerEntry, unpowered


def test_rule_and_tolerance():
    led = Ledger("chX")
    e = led.check("a", equation="§1", quantity="q", theory=1.0, measured=1.1, se=0.05, z=4.5, bias=0.01,
                  null=0.0, null_label="0")
    assert math.isclose(e.tol, 4.5 * 0.05 + 0.01)
    assert e.passed and e.kind == "measured"
    assert math.isclose(e.power, 1.0 / e.tol)
    assert e.powered and e.ok and not led.failures()


def test_default_kinds():
    led = Ledger("chX")
    assert led.check("m", equation="", quantity="", theory=1, measured=1, se=0.1, null=0).kind == "measured"
    assert led.check("e", equation="", quantity="", theory=1, measured=1, rtol=1e-9, null=0).kind == "exact"
    with pytest.raises(ValueError, match="kind"):
        led.check("x", equation="", quantity="", theory=1, measured=1, kind="other", null=0)


def test_missing_null_fails_the_chapter():
    led = Ledger("chX")
    e = led.check("a", equation="", quantity="", theory=1.0, measured=1.0, se=0.01)
    assert e.passed and e.outcome_ok and not e.ok
    assert e.problem == "no null" and "NO NULL" in e.verdict()
    assert led.failures() == [e]


def test_unpowered_entry_fails_the_chapter():
    led = Ledger("chX")
    # theory 0.1 against null 0 with tolerance 4.5*0.1: the rule could never have rejected the null
    e = led.check("weak", equation="", quantity="", theory=0.1, measured=0.12, se=0.1, null=0.0)
    assert e.passed and not e.powered and e.power < 1
    assert e.problem == "unpowered" and not e.ok and "UNPOWERED" in e.verdict()
    assert led.failures() == [e]
    assert unpowered(led.entries) == [e]
    assert unpowered(led.to_list()) == led.to_list()  # the dicts of a results file too


def test_controls_and_consistency_need_no_power():
    led = Ledger("chX")
    c = led.check("ctl", equation="", quantity="", theory=0.0, measured=1.0, se=0.01, expect="fail",
                  null=0.0, null_label="the wrong value itself")
    k = led.check("cons", equation="", quantity="", theory=1.0, measured=1.0, rtol=1e-12, kind="consistency",
                  null=1.0, null_label="same algebra")
    assert c.ok and k.ok and c.power == 0 and k.power == 0
    assert not led.failures()
    # a control that is accepted is a failure as before
    bad = led.check("ctl2", equation="", quantity="", theory=1.0, measured=1.0, se=0.01, expect="fail", null=0)
    assert not bad.ok and "CONTROL ACCEPTED" in bad.verdict()


def test_exact_rule_power_is_infinite():
    e = Ledger("chX").check("x", equation="", quantity="", theory=2.0, measured=2.0, null=0.0)
    assert e.tol == 0 and math.isinf(e.power) and e.ok
    assert e.to_dict()["power"] is None  # JSON has no infinity


def test_roundtrip_dict_and_json():
    led = Ledger("chX")
    led.check("a", equation="eq. (1.1)", quantity="q", theory=1.0, measured=1.0, se=0.01, null=0.0,
              null_label="0")
    d = json.loads(json.dumps(led.to_list()))[0]
    e = LedgerEntry.from_dict(d)
    assert e.ok and d["ok"] and d["verdict"] == "pass" and d["problem"] == ""


def test_section_tables_and_anchors():
    led = Ledger("ch01")
    led.check("a b", equation="", quantity="x<y", theory=1, measured=1, se=0.01, null=0)
    t = led.section()
    assert len(t) == 1 and 'id="check-ch01-a-b"' in t._repr_html_() and "x&lt;y" in t._repr_html_()
    led.check("c", equation="", quantity="", theory=1, measured=1, se=0.01, null=0)
    assert [e.id for e in led.section().entries] == ["c"]
    assert _ledger.anchor("ch01", "a b") == "check-ch01-a-b"


def test_null_must_be_finite():
    with pytest.raises(ValueError, match="null"):
        Ledger("chX").check("a", equation="", quantity="", theory=1, measured=1, null=float("inf"))


# ---------------------------------------------------------------------------------- pages
BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(p.name.split("_")[0] for p in BOOK.glob("*_*.md") if p.name.split("_")[0] != "ledger")


def _code_cells(path):
    cells, cur = [], None
    for line in path.read_text().splitlines():
        if line.startswith("```{code-cell}"):
            cur = []
        elif cur is not None and line.startswith("```"):
            cells.append(cur)
            cur = None
        elif cur is not None:
            cur.append(line)
    return cells


@pytest.mark.parametrize("cid", CHAPTERS)
def test_code_lines_fit(cid):
    """No code line of the chapter is wider than 100 characters (the rendered cells never scroll)."""
    path = next(BOOK.glob(f"{cid}_*.md"))
    wide = [ln for cell in _code_cells(path) for ln in cell if len(ln) > 100]
    assert not wide, f"{path.name}: {len(wide)} code lines over 100 characters, e.g. {wide[0]!r}"


@pytest.mark.parametrize("cid", CHAPTERS)
def test_every_check_names_a_null(cid):
    """Source-level guard: every ch.check call of the chapter passes null= (the ledger enforces it too)."""
    import ast

    path = next(BOOK.glob(f"{cid}_*.md"))
    for cell in _code_cells(path):
        code = "\n".join(ln for ln in cell if not ln.startswith(":"))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "check" \
                    and getattr(node.func.value, "id", "") == "ch":
                names = {k.arg for k in node.keywords}
                assert "null" in names, f"{path.name}: a ch.check call (line {node.lineno} of a cell) has no null"


def _results():
    """Two synthetic chapters' results: a measured, an exact, a consistency entry and a control."""
    a, b = Ledger("ch01"), Ledger("ch02")
    a.check("m1", equation="§1.1", quantity="E[z^2] <b>", theory=1.0, measured=1.01, se=0.01, null=0.0,
            null_label="0")
    a.check("e1", equation="§1.2", quantity="exact", theory=3.0, measured=3.0, rtol=1e-12, null=0.0)
    a.check("c1", equation="§1.3", quantity="closed form vs recursion", theory=2.0, measured=2.0, rtol=1e-12,
            kind="consistency", null=1.0)
    b.check("ctl", equation="§2.1", quantity="control", theory=0.0, measured=1.0, se=0.01, expect="fail",
            null=0.0)
    b.check("weak", equation="§2.2", quantity="unpowered", theory=0.01, measured=0.01, se=0.01, null=0.0)
    return {c: {"chapter": c, "title": t, "ledger": led.to_list()} for c, t, led in
            (("ch01", "One", a), ("ch02", "Two", b))}


def test_counts_keep_kinds_apart():
    from pdlt import sphinxext

    c = sphinxext._counts(_results()["ch01"])
    assert (c["measured"], c["exact"], c["consistency"], c["verified"]) == (1, 1, 1, 2)
    assert "consistency (not counted" in sphinxext._summary(_results()["ch01"])
    c2 = sphinxext._counts(_results()["ch02"])
    assert c2["bad"] == ["weak"] and c2["unpowered"] == ["weak"] and c2["rejected"] == 1


def test_ledger_html(tmp_path):
    from pdlt import sphinxext

    res = _results()
    names = sphinxext.ledger_plots([e for r in res.values() for e in r["ledger"]], tmp_path)
    assert all((tmp_path / n).stat().st_size > 1000 for n in names.values())
    html = sphinxext.ledger_html(res, lambda c, a: f"{c}.html#{a}", {"ch01": "One"}, names)
    for col in sphinxext.LEDGER_COLUMNS:
        assert f"<th>{col}</th>" in html
    assert ">ch01<" in html and ">ch02<" in html and "&lt;b&gt;" in html  # escaped quantity
    assert 'href="ch01.html#check-ch01-m1"' in html
    assert html.count('class="pdlt-ledger-group"') == 2 and "UNPOWERED" in html
    assert "index" not in html.split("<tbody>")[0].lower()  # no index column
    assert "cdn" not in html.lower()


def _page(tmp_path, body, name):
    from pdlt import sphinxext

    js = (BOOK / "_static" / "pdlt-ledger.js").read_text()
    page = tmp_path / name
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
                    f"content='width=device-width'><style>{sphinxext.CSS}</style></head>"
                    f"<body style='margin:0 auto;max-width:1400px'>{body}<script>{js}</script></body></html>")
    return page


def _browser():
    from pdlt.pdf import chromium

    b = chromium()
    if b is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    return b


def _png_size(png: Path):
    import struct

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _dom_width(browser, page, width):
    """document scroll width and the client width of the page at a window width (after scripts)."""
    import subprocess

    from pdlt.pdf import browser_args

    probe = page.with_name(page.stem + f"-probe{width}.html")
    probe.write_text(page.read_text().replace(
        "</body>", "<script>document.title = document.documentElement.scrollWidth + 'x' + "
                   "document.documentElement.clientWidth;</script></body>"))
    out = subprocess.run(browser_args(browser, width) + ["--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    w, cw = map(int, out.split("<title>")[1].split("</title>")[0].split("x"))
    return out, w, cw


@pytest.mark.slow
@pytest.mark.parametrize("width", [1400, 390])
def test_ledger_page_screenshot(tmp_path, width):
    """The ledger page in headless Chromium: the script runs (no CDN), nothing is wider than the window
    (tables scroll inside their box), and a screenshot is drawn."""
    import subprocess

    from pdlt import sphinxext
    from pdlt.pdf import browser_args

    browser = _browser()
    res = _results()
    names = sphinxext.ledger_plots([e for r in res.values() for e in r["ledger"]], tmp_path)
    page = _page(tmp_path, sphinxext.ledger_html(res, lambda c, a: f"#{a}", None, names).replace(
        '<details class="pdlt-ledger-group"', '<details open class="pdlt-ledger-group"'), "ledger.html")
    dom, w, cw = _dom_width(browser, page, width)
    assert "5 shown" in dom, "the ledger script did not run"
    assert w <= cw, f"page {w}px wide in a {cw}px window: something is cut off"
    png = tmp_path / f"ledger-{width}.png"
    subprocess.run(browser_args(browser, width) + [f"--screenshot={png}", page.as_uri()], capture_output=True,
                   timeout=120)
    assert _png_size(png)[0] == width


@pytest.mark.slow
def test_chapter_results_table_screenshot(tmp_path):
    """A chapter's section table (what ``ch.ledger.section()`` shows) fits a phone and a desktop."""
    led = Ledger("ch04")
    for i in range(6):
        led.check(f"deep-G1-11-l{i}", equation="§4.3", quantity="G1_11 at l=4: intercept in 1/n of n(E[Ĝ]−K)",
                  theory=-0.05, measured=-0.051, se=0.0004, null=0.0, null_label="infinite width")
    html = led.section()._repr_html_()
    assert html.count('id="check-ch04-deep-g1-11-l') == 6
    browser = _browser()
    page = _page(tmp_path, html, "chapter.html")
    for width in (1400, 390):
        _, w, cw = _dom_width(browser, page, width)
        assert w <= cw, f"results table {w}px wide in a {cw}px window"


@pytest.mark.slow
def test_pdf_first_pages(tmp_path):
    """Two pages with math (offline MathJax is not needed for the test: plain HTML/SVG) and a figure,
    printed and joined by pdlt.pdf; pdftoppm renders the first pages, which must not be blank."""
    import shutil
    import subprocess

    from pdlt import pdf

    _browser()
    if shutil.which("pdftoppm") is None or shutil.which("pdfunite") is None:
        pytest.skip("poppler-utils missing (apt-get install poppler-utils)")
    site = tmp_path / "html"
    (site / "book").mkdir(parents=True)
    names = __import__("pdlt.sphinxext", fromlist=["x"]).ledger_plots(
        [e for r in _results().values() for e in r["ledger"]], site / "book")
    (site / "intro.html").write_text("<html><body><h1>Front page</h1><p>K = C<sub>b</sub> + "
                                     "C<sub>W</sub> ⟨σσ⟩</p></body></html>")
    (site / "book" / "ledger.html").write_text(
        f"<html><body><h1>Ledger</h1><details><summary>ch01</summary><p>hidden row</p></details>"
        f"<img src='{names['pull']}' style='width:80%'></body></html>")
    out = pdf.build_pdf(site, tmp_path / "book.pdf", pages=["intro", "book/ledger"])
    assert out.read_bytes()[:5] == b"%PDF-"
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "2", str(out), str(tmp_path / "p")],
                   check=True, capture_output=True)
    pngs = sorted(tmp_path.glob("p-*.png"))
    assert len(pngs) == 2
    assert all(p.stat().st_size > 2000 for p in pngs)  # text and a figure, not blank pages
    txt = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True).stdout
    assert "Front page" in txt and "hidden row" in txt  # collapsed details are printed open


def test_pdf_toc_order():
    from pdlt.pdf import toc_pages

    pages = toc_pages(BOOK.parent)
    assert pages[0] == "book/intro" and "book/ledger" in pages and pages.index("book/ch01_pretraining") < \
        pages.index("book/ch02_neural_networks")


@pytest.mark.slow
def test_launch_notebook_runs_under_papermill(tmp_path):
    """The downloadable notebook of a chapter runs under plain Papermill with -p (as the README says)."""
    import os
    import subprocess
    import sys

    import nbformat

    from pdlt import notebooks

    root = BOOK.parent
    nb = notebooks.launch_notebook(BOOK / "ch01_pretraining.md", "https://github.com/pdlt-executed/pdlt")
    src = tmp_path / "ch01.ipynb"
    nbformat.write(nb, src)
    papermill = Path(sys.executable).parent / "papermill"
    env = dict(os.environ, PYTHONPATH=str(root / "lib"), PDLT_RESULTS_DIR=str(tmp_path / "results"),
               PDLT_PROGRESS="0", JAX_PLATFORMS="cpu")
    proc = subprocess.run([str(papermill), str(src), str(tmp_path / "out.ipynb"), "-p", "samples", "200000",
                           "--cwd", str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "results" / "ch01.json").read_text())
    assert res["params"]["samples"] == 200000 and all(e["ok"] for e in res["ledger"])
