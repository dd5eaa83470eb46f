"""The built book: every chapter executed, every ledger entry as expected, pages render offline."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest
from conftest import ROOT

from pdlt.run import chapter_id, find_chapters

pytestmark = pytest.mark.book
CHAPTERS = [chapter_id(p) for p in find_chapters(ROOT / "book")]


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
