"""The built book as one PDF, printed from its HTML by headless Chromium.

``python -m pdlt.pdf [--html _build/html] [--out _build/pdf/book.pdf]`` (``make pdf``) prints every
page of ``_toc.yml``, in order, with Chromium's own print engine: math is rendered by the book's
offline MathJax before printing (Chromium runs each page's scripts for ``--virtual-time-budget``
milliseconds), figures are the built PNGs, and the theme's print style sheet drops the navigation.
Collapsed ``<details>`` (the ledger's chapter groups) are printed open: each page is printed from a
copy beside it with ``open`` set on every ``<details>``. The pages are joined with ``pdfunite``
(Debian ``poppler-utils``). Chromium is the Debian ``chromium`` package (``apt-get install
chromium poppler-utils``).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

__all__ = ["chromium", "toc_pages", "print_page", "build_pdf"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str | None:
    """Path of a headless-capable Chromium, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def toc_pages(root: Path) -> list[str]:
    """Docnames of ``<root>/_toc.yml`` in reading order (root first)."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    out = [toc["root"]]

    def walk(items):
        for it in items or []:
            if "file" in it:
                out.append(it["file"])
            walk(it.get("sections"))
            walk(it.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return out


def browser_args(browser: str, width: int = 1400) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--run-all-compositor-stages-before-draw", f"--window-size={width},1800"]


def print_page(html: Path, pdf: Path, *, browser: str | None = None, budget_ms: int = 15000,
               timeout: float = 180) -> Path:
    """Print one HTML page to ``pdf`` (details opened, scripts run for ``budget_ms``)."""
    browser = browser or chromium()
    if browser is None:
        raise RuntimeError("pdlt.pdf: no Chromium found (apt-get install chromium)")
    html = Path(html).resolve()
    text = html.read_text(encoding="utf-8")
    opened = re.sub(r"<details(?![^>]*\bopen\b)", "<details open", text)
    with tempfile.NamedTemporaryFile("w", suffix=".html", prefix=".print-", dir=html.parent,
                                     delete=False, encoding="utf-8") as tmp:
        tmp.write(opened)
    try:
        pdf.parent.mkdir(parents=True, exist_ok=True)
        cmd = browser_args(browser) + ["--no-pdf-header-footer", f"--virtual-time-budget={budget_ms}",
                                       f"--print-to-pdf={pdf}", Path(tmp.name).as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
            raise RuntimeError(f"pdlt.pdf: printing {html} failed:\n{proc.stderr[-2000:]}")
    finally:
        Path(tmp.name).unlink(missing_ok=True)
    return pdf


def build_pdf(html_dir: Path, out: Path, *, root: Path | None = None, pages: list[str] | None = None,
              browser: str | None = None, budget_ms: int = 15000) -> Path:
    """Print the pages (docnames; default: every page of ``<root>/_toc.yml``) and join them."""
    html_dir = Path(html_dir)
    pages = pages if pages is not None else toc_pages(Path(root or Path.cwd()))
    files = [html_dir / f"{p}.html" for p in pages]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError("pdlt.pdf: pages not built (run make book first): " + ", ".join(missing))
    unite = shutil.which("pdfunite")
    if unite is None:
        raise RuntimeError("pdlt.pdf: pdfunite not found (apt-get install poppler-utils)")
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        parts = [print_page(f, Path(tmp) / f"{i:03d}.pdf", browser=browser, budget_ms=budget_ms)
                 for i, f in enumerate(files)]
        out.parent.mkdir(parents=True, exist_ok=True)
        if len(parts) == 1:
            shutil.copyfile(parts[0], out)
        else:
            subprocess.run([unite, *map(str, parts), str(out)], check=True, capture_output=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pdlt.pdf", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".", help="the book's root (with _toc.yml)")
    ap.add_argument("--html", default="_build/html", help="the built HTML")
    ap.add_argument("--out", default="_build/pdf/book.pdf", help="the PDF to write")
    ap.add_argument("--budget-ms", type=int, default=15000, help="script time per page (MathJax)")
    a = ap.parse_args(argv)
    out = build_pdf(Path(a.html), Path(a.out), root=Path(a.root), budget_ms=a.budget_ms)
    print(f"pdlt.pdf: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
