"""The built book: every chapter executed, every ledger entry as expected, pages render offline."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import ROOT

import pdlt
from pdlt import notebooks, sphinxext
from pdlt.run import chapter_id, find_chapters, parameters_of

pytestmark = pytest.mark.book
CHAPTER_PATHS = find_chapters(ROOT / "book")
CHAPTERS = [chapter_id(p) for p in CHAPTER_PATHS]


@pytest.mark.parametrize("cid", CHAPTERS)
def test_chapter_ledger(built_book, cid):
    f = built_book / "results" / f"{cid}.json"
    assert f.exists(), f"{cid} wrote no results file (did it call ch.finish()?)"
    res = json.loads(f.read_text())
    assert res["ledger"], f"{cid} checks nothing"
    bad = [e for e in res["ledger"] if not e["ok"]]
    assert not bad, "\n".join(f"{e['id']}: theory {e['theory']}, measured {e['measured']} ± {e['se']}, "
                              f"rule {e['rule']}, expected {e['expect']}" for e in bad)
    assert (built_book / "html" / "book").glob(f"{cid}_*.html")


@pytest.mark.parametrize("cid", CHAPTERS)
def test_chapter_matches_golden_ledger(built_book, cid):
    """Every number of the chapter's ledger as pinned in tests/golden/ledger/<cid>.json."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "golden"))
    import ledger as golden_ledger

    want = golden_ledger.golden(cid)
    assert want is not None, f"no golden ledger for {cid}"
    res = json.loads((built_book / "results" / f"{cid}.json").read_text())
    same = golden_ledger.machine_of(cid) == golden_ledger.machine_signature()
    diff = golden_ledger.compare(want, golden_ledger.pin(res), same_machine=same,
                                 tols={e["id"]: e.get("tol") for e in res["ledger"]})
    assert not diff, f"{cid} differs from its golden ledger{'' if same else ' (written on another processor)'} " \
                     f"(regenerate deliberately with " \
                     f"`python tests/golden/ledger.py _build/results {cid}`):\n" + "\n".join(diff[:20])


def test_every_built_entry_is_powered(built_book):
    """No entry expected to pass lacks a null or has power <= 1 (consistency entries excepted)."""
    bad = []
    for f in sorted((built_book / "results").glob("*.json")):
        led = json.loads(f.read_text()).get("ledger", [])
        bad += [f"{f.stem}/{e['id']}: {pdlt.book.LedgerEntry.from_dict(e).problem} (power {e.get('power')})"
                for e in pdlt.book.unpowered(led)]
    assert not bad, "; ".join(bad)


def test_ledger_page_lists_every_chapter(built_book):
    html = (built_book / "html" / "book" / "ledger.html").read_text()
    for cid in CHAPTERS:
        assert f">{cid}<" in html, f"{cid} missing from the ledger page"
    assert "control rejected" in html


def test_pages_need_no_network(built_book):
    html = (built_book / "html" / "book" / "ch01_pretraining.html").read_text()
    assert "cdn.jsdelivr.net" not in html and "_static/mathjax" in html
    assert "<img" in html


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.geteuid() == 0 and shutil.which("apt-get"):  # install on demand (CI runs as root)
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        return shutil.which("chromium")
    return None


def screenshot(page, out, height=2400):
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium: install Debian's `chromium` package to run the screenshot tests")
    with tempfile.TemporaryDirectory() as prof:
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                        f"--user-data-dir={prof}", "--virtual-time-budget=15000", f"--window-size=1280,{height}",
                        f"--screenshot={out}", f"file://{page}"], capture_output=True, timeout=120)
    assert out.exists(), "Chromium wrote no screenshot"
    return out


def test_chapter_page_renders_math_and_figures(built_book, tmp_path):
    """Headless Chromium, offline: MathJax typesets (no raw TeX left) and the figures load."""
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium: install Debian's `chromium` package to run the screenshot tests")
    page = built_book / "html" / "book" / "ch01_pretraining.html"
    with tempfile.TemporaryDirectory() as prof:
        dom = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                              f"--user-data-dir={prof}", "--virtual-time-budget=15000", "--dump-dom",
                              f"file://{page}"], capture_output=True, text=True, timeout=120).stdout
    assert "mjx-container" in dom, "MathJax did not typeset the page"
    assert dom.count("<img") >= 2
    shot = screenshot(page, tmp_path / "ch01.png")
    assert shot.stat().st_size > 50_000  # a rendered page with figures, not a blank one
    keep = built_book / "screenshots"
    keep.mkdir(exist_ok=True)
    shutil.copy(shot, keep / "ch01.png")


# ------------------------------------------------------------- the reader's view of the built book
def _html(build: Path, page: str) -> str:
    return (build / "html" / f"{page}.html").read_text()


@pytest.mark.parametrize("path", CHAPTER_PATHS, ids=lambda p: p.stem)
def test_chapter_page_offers_executed_notebook_and_launch_buttons(built_book, path):
    page = f"book/{path.stem}"
    html = _html(built_book, page)
    # download: the executed notebook (with outputs)
    assert f"_sources/{page}.ipynb" in html
    executed = nbformat.read(built_book / "html" / "_sources" / f"{page}.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    # launch: Colab and Binder open the generated notebook, which exists in the site
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    branch, folder = cfg["sphinx"]["config"]["pdlt_launch_branch"], cfg["sphinx"]["config"]["pdlt_launch_path"]
    org_repo = notebooks.repository_url(ROOT).split("github.com/")[1]
    assert f"colab.research.google.com/github/{org_repo}/blob/{branch}/{folder}/{page}.ipynb" in html
    assert f"mybinder.org/v2/gh/{org_repo}/{branch}?urlpath=lab/tree/{folder}/{page}.ipynb" in html
    nb = nbformat.read(built_book / "html" / folder / f"{page}.ipynb", as_version=4)
    assert notebooks.INSTALL_TAG in nb.cells[0].metadata["tags"]
    # the rerun box and the citation of the book
    assert 'id="rerun-with-other-parameters"' in html and "python -m pdlt.run" in html
    assert "bibliography.html#" in html


def test_front_page_gallery_and_reading_order(built_book):
    html = _html(built_book, "book/intro")
    results = sphinxext.load_results(built_book / "results")
    for path in CHAPTER_PATHS:
        cid = chapter_id(path)
        assert cid in results, f"{cid} wrote no results"
        card = re.search(rf'<a class="pdlt-card[^"]*" href="{path.stem}.html">(.*?)</a>', html, re.S)
        assert card, f"no gallery card for {cid}"
        img = re.search(r'<img src="([^"]+)"', card.group(1))
        assert img, f"{cid} has no headline figure"
        shot = (built_book / "html" / "book" / img.group(1)).resolve()
        assert shot.read_bytes() == (built_book / "results" / f"{cid}.png").read_bytes()
        assert html.count(f'href="{path.stem}.html"') >= 2  # card and reading order
    # reading order follows _toc.yml
    order = [m for m in re.findall(r'class="reference internal" href="([\w-]+)\.html"', html)]
    toc = [p.stem for p in CHAPTER_PATHS]
    assert [o for o in order if o in toc][-len(toc):] == toc


def test_status_page_reports_each_chapter(built_book):
    html = _html(built_book, "book/status")
    results = sphinxext.load_results(built_book / "results")
    for path in CHAPTER_PATHS:
        res = results[chapter_id(path)]
        assert res["provenance"]["lib_hash"] in html
        assert f'href="{path.stem}.html">{chapter_id(path)}<' in html
        n = len(res["ledger"])
        ctrl = sum(e["expect"] == "fail" for e in res["ledger"])
        cons = sum(e["expect"] == "pass" and e.get("kind") == "consistency" for e in res["ledger"])
        v = n - ctrl - cons  # consistency entries are not counted as verification
        assert f"{v} / {v} checks passed" in html and f"{ctrl} / {ctrl} controls rejected" in html
    assert pdlt.book.lib_hash() in html


def test_bibliography_lists_the_book(built_book):
    html = _html(built_book, "book/bibliography")
    assert "The Principles of Deep Learning Theory" in html and "2106.10165" in html


def _chromium_run(args, timeout=120):
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium: install Debian's `chromium` package to run the screenshot tests")
    with tempfile.TemporaryDirectory() as prof:
        return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                               f"--user-data-dir={prof}", "--virtual-time-budget=15000", *args],
                              capture_output=True, text=True, timeout=timeout)


def _not_blank(png: Path) -> float:
    """Fraction of pixels that are not (near) white."""
    from PIL import Image

    im = Image.open(png).convert("L")
    hist = im.histogram()
    return 1 - sum(hist[245:]) / sum(hist)


def test_screenshots_of_front_page_and_rerun_box(built_book, tmp_path):
    """Headless Chromium, offline: the gallery's figures load and the rerun box renders as a box."""
    keep = built_book / "screenshots"
    keep.mkdir(exist_ok=True)
    intro = built_book / "html" / "book" / "intro.html"
    dom = _chromium_run(["--dump-dom", f"file://{intro}"]).stdout
    assert len(re.findall(r'class="pdlt-card( pdlt-card-bad)?"', dom)) == len(CHAPTER_PATHS) and "mjx-container" in dom
    shot = tmp_path / "intro.png"
    _chromium_run([f"--screenshot={shot}", "--window-size=1280,1600", f"file://{intro}"])
    assert shot.exists() and _not_blank(shot) > 0.05, "front page screenshot is blank"
    shutil.copy(shot, keep / "intro.png")

    # the box sits below the long ledger table: a copy of the page moves it to the top of the article
    page = built_book / "html" / "book" / f"{CHAPTER_PATHS[0].stem}.html"
    probe = page.with_name(f".shot-{page.name}")
    js = ('<script>window.addEventListener("load",()=>{const b=document.getElementById('
          '"rerun-with-other-parameters");(document.querySelector("article")||document.body).prepend(b);'
          'window.scrollTo(0,0);});</script></body>')
    probe.write_text(page.read_text().replace("</body>", js))
    try:
        dom = _chromium_run(["--dump-dom", f"file://{probe}"]).stdout
        box = re.search(r'<div class="admonition tip pdlt-rerun".*?</div>', dom, re.S)
        assert box and "Rerun with other parameters" in box.group(0)
        for name in parameters_of(CHAPTER_PATHS[0]):
            assert f"<code>{name}</code>" in box.group(0)
        shot = tmp_path / "rerun.png"
        _chromium_run([f"--screenshot={shot}", "--window-size=1280,900", f"file://{probe}"])
    finally:
        probe.unlink()
    assert shot.exists() and _not_blank(shot) > 0.05, "rerun box screenshot is blank"
    shutil.copy(shot, keep / f"{chapter_id(CHAPTER_PATHS[0])}-rerun.png")
