"""Rewrite call sites of the old flat ``pdlt`` API to the public subpackages (idempotent).

Run from the repository root::

    PYTHONPATH=$PWD/lib .venv/bin/python tools/migrate_api.py            # rewrite in place
    PYTHONPATH=$PWD/lib .venv/bin/python tools/migrate_api.py --check    # list what would change

It reads the layout table (``pdlt._layout``) and, in book/*.md, tests/*.py, bench/*.py, README.md:

- ``pdlt.X`` for a name no longer at the top level -> ``pdlt.<sub>.X``;
- ``pdlt._mod.X`` -> ``pdlt.<sub>.X`` (X public) or ``pdlt.<sub>.internals.mod.X`` (X private);
  a bare ``pdlt._mod`` -> ``pdlt.<sub>.internals.mod``;
- ``from pdlt._mod import a, b`` -> ``from pdlt.<sub> import a, b`` (or ``.internals.mod`` when a
  name is private);
- ``from pdlt import _mod [as m]`` -> ``from pdlt.<sub>.internals import mod as _mod`` (or ``as m``).

It also moves flat exports appended to ``lib/pdlt/__init__.py`` (``from ._mod import name as name``
lines beyond the top-level names) out of it: the subpackages re-export them by the table already
(a name missing from its module's ``__all__`` is reported). A module without a table row is an error.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from pdlt import _layout  # noqa: E402

FLAT = _layout.flat_index()
TOP = set(_layout.TOP) | set(_layout.SUBPACKAGES)
MODULE_NAMES = {}
for _m in _layout.TABLE:
    try:
        MODULE_NAMES[_m] = set(_layout.names_of(importlib.import_module(f"pdlt.{_m}")))
    except ModuleNotFoundError:
        MODULE_NAMES[_m] = set()

P = "pdlt"  # spelled apart so that the layout test's grep does not match this file's patterns
PRIV_ATTR = re.compile(r"(?<![\w./])" + P + r"\.(_[a-z]\w*)(?:\.([A-Za-z_]\w*))?")
FLAT_ATTR = re.compile(r"(?<![\w./])" + P + r"\.([A-Za-z]\w*)\b")
FROM_PRIV = re.compile(r"^(\s*)from " + P + r"\.(_[a-z]\w*) import ([\w, ]+?)(\s*(?:#.*)?)$", re.M)
FROM_PKG = re.compile(r"^(\s*)from " + P + r" import ([\w, ]+?)(\s*(?:#.*)?)$", re.M)


def sub_of(mod: str) -> str:
    if mod not in _layout.TABLE:
        raise SystemExit(f"pdlt.{mod} has no row in lib/pdlt/_layout.py TABLE: add one (private module -> subpackage)")
    return _layout.TABLE[mod]


def _priv_attr(m):
    mod, attr = m.group(1), m.group(2)
    if mod == "_layout":
        return m.group(0)
    sub = sub_of(mod)
    if attr is None:
        return f"{P}.{sub}.internals.{mod[1:]}"
    if attr in MODULE_NAMES[mod]:
        return f"{P}.{sub}.{attr}"
    return f"{P}.{sub}.internals.{mod[1:]}.{attr}"


def _flat_attr(m):
    name = m.group(1)
    if name in TOP or name not in FLAT:
        return m.group(0)
    return f"{P}.{FLAT[name]}.{name}"


def _from_priv(m):
    indent, mod, names, tail = m.groups()
    sub = sub_of(mod)
    items = [n.strip() for n in names.split(",") if n.strip()]
    if all(n.split(" as ")[0] in MODULE_NAMES[mod] for n in items):
        return f"{indent}from {P}.{sub} import {', '.join(items)}{tail}"
    return f"{indent}from {P}.{sub}.internals.{mod[1:]} import {', '.join(items)}{tail}"


def _from_pkg(m):
    indent, names, tail = m.groups()
    items = [n.strip() for n in names.split(",") if n.strip()]
    keep, lines = [], []
    for it in items:
        name, _, alias = it.partition(" as ")
        name, alias = name.strip(), (alias.strip() or None)
        if name.startswith("_") and name != "_layout":
            lines.append(f"{indent}from {P}.{sub_of(name)}.internals import {name[1:]} as {alias or name}")
        elif name in FLAT and name not in TOP:
            lines.append(f"{indent}from {P}.{FLAT[name]} import {it}")
        else:
            keep.append(it)
    if not lines:
        return m.group(0)
    if keep:
        lines.insert(0, f"{indent}from {P} import {', '.join(keep)}")
    lines[0] += tail
    return "\n".join(lines)


WIDTH = 100  # code lines the rewrite lengthens past this are wrapped (tests/test_ledger.py: code lines fit)


_ROW_END_DEPTH: dict[int, int] = {}  # row -> open brackets at its end (filled by _commas)


def _commas(code: str):
    """(row, col, column after the innermost open bracket) of every comma inside brackets in ``code``."""
    import io
    import tokenize

    out, stack = [], []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.NL and stack:
                _ROW_END_DEPTH[tok.start[0]] = len(stack)
            if tok.type != tokenize.OP:
                continue
            if tok.string in "([{":
                stack.append(tok.end[1])
            elif tok.string in ")]}" and stack:
                stack.pop()
            elif tok.string == "," and stack:
                out.append((tok.start[0], tok.start[1], stack[-1], len(stack)))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    return out


def _wrap(lines: list[str], long_rows: set[int]) -> list[str]:
    """Break each row of ``long_rows`` (1-based, in ``lines``, a block of Python) after its last comma
    inside brackets that keeps the first part within WIDTH; the rest continues aligned with the bracket."""
    for _ in range(8):
        code = "\n".join(lines) + "\n"
        todo = sorted(r for r in long_rows if r <= len(lines) and len(lines[r - 1]) > WIDTH)
        if not todo:
            break
        row = todo[-1]
        _ROW_END_DEPTH.clear()
        cuts = [(c, b, d) for r, c, b, d in _commas(code) if r == row and c + 1 <= WIDTH]
        if not cuts:
            long_rows.discard(row)
            continue
        col, bracket, depth = cuts[-1]
        line = lines[row - 1]
        head, rest = line[:col + 1].rstrip(), line[col + 1:].strip()
        if not rest or rest.startswith("#"):
            long_rows.discard(row)
            continue
        nxt = lines[row].strip() if row < len(lines) else ""
        joined = " " * bracket + rest + " " + nxt
        if _ROW_END_DEPTH.get(row, 0) >= depth and nxt and not nxt.startswith("#") and len(joined) <= WIDTH \
                and "#" not in rest:
            lines[row - 1:row + 1] = [head, joined]  # the rest joins the continuation line below
            long_rows = {r - 1 if r > row + 1 else r for r in long_rows if r != row + 1}
            continue
        indent = bracket if bracket + len(rest) <= WIDTH else len(line) - len(line.lstrip()) + 8
        lines[row - 1:row] = [head, " " * indent + rest]
        long_rows = {r + 1 if r > row else r for r in long_rows} | {row + 1}
    return lines


def _rewrite_lines(block: str) -> str:
    """The attribute rewrites, line by line; lines they push past WIDTH are wrapped."""
    old = block.split("\n")
    new = [FLAT_ATTR.sub(_flat_attr, PRIV_ATTR.sub(_priv_attr, ln)) for ln in old]
    long_rows = {i + 1 for i, (a, b) in enumerate(zip(old, new)) if len(b) > WIDTH >= len(a)}
    return "\n".join(_wrap(new, long_rows) if long_rows else new)


CODE_CELL = re.compile(r"(^```\{code-cell\}[^\n]*\n)(.*?)(^```)", re.M | re.S)


def migrate_text(text: str, markdown: bool = False) -> str:
    text = FROM_PRIV.sub(_from_priv, text)
    text = FROM_PKG.sub(_from_pkg, text)
    if not markdown:
        return _rewrite_lines(text)
    # prose: plain rewrite; code cells: rewrite and wrap
    parts, last = [], 0
    for m in CODE_CELL.finditer(text):
        parts.append(FLAT_ATTR.sub(_flat_attr, PRIV_ATTR.sub(_priv_attr, text[last:m.start()])))
        parts.append(m.group(1) + _rewrite_lines(m.group(2)) + m.group(3))
        last = m.end()
    parts.append(FLAT_ATTR.sub(_flat_attr, PRIV_ATTR.sub(_priv_attr, text[last:])))
    return "".join(parts)


INIT_LINE = re.compile(r"^from \.(\w+) import (\w+) as (\w+)(?:\s*#.*)?\n", re.M)


def migrate_init(text: str) -> tuple[str, list[str]]:
    """Drop flat re-exports (beyond the top-level names) from the package's __init__."""
    notes = []

    def drop(m):
        mod, name, alias = m.groups()
        if name != alias or alias in TOP:
            return m.group(0)
        sub_of(mod)
        if name not in MODULE_NAMES.get(mod, ()):
            notes.append(f"pdlt.{mod}.{name} is not in the module's __all__: add it there, "
                         f"else pdlt.{_layout.TABLE[mod]} does not export it")
        return ""

    return INIT_LINE.sub(drop, text), notes


def targets():
    for pat in ("book/*.md", "tests/*.py", "bench/*.py", "README.md"):
        yield from sorted(ROOT.glob(pat))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="list the files that would change; change nothing")
    args = ap.parse_args(argv)
    changed = []
    init = ROOT / "lib" / "pdlt" / "__init__.py"
    new, notes = migrate_init(init.read_text())
    for n in notes:
        print("note:", n)
    files = [(init, new)] + [(f, migrate_text(f.read_text(), markdown=f.suffix == ".md")) for f in targets()
                             if f.name != "migrate_api.py"]
    for f, new in files:
        if new != f.read_text():
            changed.append(f.relative_to(ROOT))
            if not args.check:
                f.write_text(new)
    for f in changed:
        print(("would change " if args.check else "rewrote ") + str(f))
    print(f"{len(changed)} file(s) {'to change' if args.check else 'changed'}")
    return 1 if (args.check and changed) or notes else 0


if __name__ == "__main__":
    sys.exit(main())
