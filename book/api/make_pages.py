"""Writes the API reference pages (book/api/*.rst), one per public subpackage of ``pdlt``.

The pages follow the layout table (``pdlt._layout``): a page lists its subpackage's ``__all__``,
module by module. Run ``python book/api/make_pages.py`` after adding public names or a table row;
``tests/test_layout.py`` fails when a page is stale.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pdlt
from pdlt import _layout

TITLES = {
    "nets": "Network descriptions",
    "gauss": "Gaussian expectations",
    "theory": "Theory",
    "ensembles": "Ensembles",
    "learning": "Learning",
    "stats": "Statistics",
    "topics": "Topics beyond the book",
    "book": "Book machinery",
}


def _blurb(sub) -> str:
    doc = inspect.getdoc(getattr(pdlt, sub)) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def directive(obj, sub):
    if inspect.isclass(obj):
        return "autoclass", ["   :members:"] if obj.__module__ == "pdlt.nets" else []
    if callable(obj):
        return "autofunction", []
    return "autodata", ["   :annotation:"]


def pages() -> dict[str, str]:
    out = {}
    for sub in _layout.SUBPACKAGES:
        pkg = getattr(pdlt, sub)
        title = TITLES.get(sub, sub)
        lines = [title, "=" * len(title), "", _blurb(sub), "", f".. currentmodule:: pdlt.{sub}", ""]
        lines += [".. autosummary::", "   :nosignatures:", ""] + [f"   {n}" for n in pkg.__all__] + [""]
        for n in pkg.__all__:
            d, opts = directive(getattr(pkg, n), sub)
            lines += [f".. {d}:: pdlt.{sub}.{n}"] + opts + [""]
        out[sub] = "\n".join(lines)
    return out


def index() -> str:
    top = [n for n in pdlt.__all__ if n not in _layout.SUBPACKAGES]
    flat = _layout.flat_index()
    lines = ["Library", "=======", "",
             "The public API of ``pdlt``, generated from the docstrings (mathematics included), one page per "
             "subpackage. The top level ``pdlt`` re-exports the most-used names:", ""]
    lines += [f"- :py:obj:`pdlt.{n} <pdlt.{flat[n]}.{n}>`" for n in top]
    lines += [""] + [f"- :doc:`{s}`" for s in _layout.SUBPACKAGES] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    here = Path(__file__).parent
    for old in here.glob("*.rst"):
        old.unlink()
    (here / "index.rst").write_text(index())
    for slug, text in pages().items():
        (here / f"{slug}.rst").write_text(text)
    print("wrote", len(_layout.SUBPACKAGES) + 1, "pages")
