"""The public layout of pdlt: a small top level, subpackages by concern driven by one table
(pdlt._layout.TABLE), the old flat names forwarded, and chapters/tests on public names only."""
import importlib
import re
from pathlib import Path

import pytest

import pdlt
from pdlt import _layout

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "pdlt"
SUBS = set(_layout.SUBPACKAGES)


def test_top_level_is_small_and_matches_dir():
    names = [n for n in pdlt.__all__ if n not in SUBS]
    assert len(names) <= 30, f"pdlt.__all__ has {len(names)} names besides the subpackages (at most 30)"
    assert len(set(pdlt.__all__)) == len(pdlt.__all__)
    assert sorted(pdlt.__all__) == [n for n in dir(pdlt) if not n.startswith("_")]
    assert SUBS <= set(pdlt.__all__)
    for n in pdlt.__all__:
        assert n in vars(pdlt), f"pdlt.{n} is in __all__ but not defined at the top level"


def test_no_stray_public_globals_in_pdlt():
    """Flat exports appended to lib/pdlt/__init__.py (``from .<module> import name as name``) bypass the layout."""
    tooling = {"run", "notebooks", "sphinxext", "pdf"}  # public modules imported as submodules
    stray = sorted(n for n in vars(pdlt) if not n.startswith("_") and n not in pdlt.__all__ and n not in tooling)
    assert not stray, (f"pdlt has top-level names outside pdlt.__all__: {stray}; give their module a row in "
                       "lib/pdlt/_layout.py TABLE and run `python tools/migrate_api.py` (it moves flat exports "
                       "out of lib/pdlt/__init__.py)")


def test_init_imports_only_tabled_modules():
    src = (LIB / "__init__.py").read_text()
    for mod in re.findall(r"^from \.(\w+) import", src, flags=re.M):
        assert mod in _layout.TABLE or mod in SUBS or mod == "_layout", (
            f"lib/pdlt/__init__.py imports from pdlt.{mod}, which has no row in lib/pdlt/_layout.py TABLE "
            "(private module -> subpackage): add one")


def test_every_private_module_has_a_row():
    mods = sorted(p.stem for p in LIB.glob("_*.py") if p.stem != "__init__")
    missing = [m for m in mods if m not in _layout.TABLE and m not in _layout.UNLISTED]
    assert not missing, (f"private modules without a row in lib/pdlt/_layout.py TABLE: {missing}; add "
                         "`\"<module>\": \"<subpackage>\"` (and an __all__ in the module)")
    assert set(_layout.TABLE.values()) <= SUBS


@pytest.mark.parametrize("mod", [m for m in _layout.TABLE if (LIB / f"{m}.py").exists()])
def test_each_module_is_re_exported_by_its_subpackage(mod):
    m = importlib.import_module(f"pdlt.{mod}")
    sub = getattr(pdlt, _layout.TABLE[mod])
    for n in _layout.names_of(m):
        assert getattr(sub, n) is getattr(m, n), f"pdlt.{_layout.TABLE[mod]}.{n} is not pdlt.{mod}.{n}"
        assert n in sub.__all__


def test_every_subpackage_name_resolves():
    for s in _layout.SUBPACKAGES:
        sub = getattr(pdlt, s)
        assert sub.__all__ and len(set(sub.__all__)) == len(sub.__all__)
        for n in sub.__all__:
            assert getattr(sub, n, None) is not None or n in vars(sub), f"pdlt.{s}.{n} does not resolve"


def test_old_flat_names_forward_to_their_subpackage():
    flat = _layout.flat_index()
    assert len(flat) > 200
    for n, s in flat.items():
        assert getattr(pdlt, n) is getattr(getattr(pdlt, s), n), n
        assert n in pdlt.__all__ or n not in dir(pdlt)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        pdlt.no_such_name  # noqa: B018


def test_white_box_access_goes_through_internals():
    from pdlt.gauss.internals.activations import _erf_kernel  # noqa: F401
    import pdlt.book.internals.params as params

    assert params.RULES is pdlt.book.RULES and params.__name__.rsplit(".", 1)[1] == "_params"


PRIVATE = re.compile(r"pdlt\." + r"_[a-z]|from pdlt import [\w, ]*\b_[a-z]|from \.\.?_[a-z]")


@pytest.mark.parametrize("pattern", ["book/*.md", "tests/*.py"])
def test_chapters_and_tests_use_public_names_only(pattern):
    hits = []
    for f in sorted(ROOT.glob(pattern)):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if PRIVATE.search(line) and "pdlt._layout" not in line and "from pdlt import _layout" not in line:
                hits.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "private modules used (run `python tools/migrate_api.py`):\n" + "\n".join(hits)


def test_api_pages_follow_the_subpackages():
    import sys

    sys.path.insert(0, str(ROOT / "book" / "api"))
    import make_pages

    pages = make_pages.pages()
    assert set(pages) == SUBS
    for s, text in pages.items():
        assert text == (ROOT / "book" / "api" / f"{s}.rst").read_text(), (
            f"book/api/{s}.rst is stale: run `python book/api/make_pages.py`")


def test_a_name_in_two_subpackages_has_a_flat_home():
    seen = {}
    for s in _layout.SUBPACKAGES:
        sub = getattr(pdlt, s)
        for n in sub.__all__:
            seen.setdefault(n, {})[s] = getattr(sub, n)
    clashes = sorted(n for n, d in seen.items() if len({id(o) for o in d.values()}) > 1)
    missing = [n for n in clashes if n not in _layout.FLAT_HOME]
    assert not missing, f"names meaning different objects in two subpackages, without a FLAT_HOME row: {missing}"


def test_public_docstrings_are_valid_restructuredtext():
    """Every public function and class docstring parses cleanly as the API pages render it."""
    import inspect

    from pdlt.sphinxext import docstring_problems

    bad = {}
    for sub in ("nets", "gauss", "theory", "ensembles", "learning", "stats", "topics", "book"):
        mod = getattr(pdlt, sub)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj) and not inspect.ismodule(obj):   # functions, jitted functions, classes
                p = docstring_problems(obj, "class" if inspect.isclass(obj) else "function")
                if p:
                    bad[f"pdlt.{sub}.{name}"] = p.splitlines()[0]
    assert not bad, "docstrings that are not valid reST:\n" + "\n".join(f"{k}: {v}" for k, v in bad.items())
