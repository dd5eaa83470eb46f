"""The golden ledger: every chapter's entries at CI scale (id, theory, measured, se, verdict).

``python tests/golden/ledger.py RESULTS [CHAPTER ...]`` reads ``RESULTS/<chapter>.json`` (the book
build's ``_build/results``) or ``RESULTS/<chapter>/results.json`` (a ``pdlt.run`` output folder),
prints what changed against the committed golden files (entries added or removed, values moved,
verdicts flipped) and rewrites ``tests/golden/ledger/<chapter>.json``. ``tests/test_book.py``
compares each built chapter with its golden file.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

GOLDEN_DIR = Path(__file__).with_name("ledger")
FIELDS = ("id", "theory", "measured", "se", "passed", "expect")
RTOL = 1e-9  # same computation, same machine: equal up to the last bits of a reduction order


def load_results(results: Path, chapter: str) -> dict | None:
    for f in (results / f"{chapter}.json", results / chapter / "results.json"):
        if f.exists():
            return json.loads(f.read_text())
    return None


def pin(res: dict) -> list[dict]:
    return [{k: e.get(k) for k in FIELDS} for e in res["ledger"]]


def close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= RTOL * max(abs(a), abs(b)) + 1e-300


def compare(golden: list[dict], current: list[dict]) -> list[str]:
    """Differences between a golden and a current ledger, one line each (empty when they match)."""
    g, c = {e["id"]: e for e in golden}, {e["id"]: e for e in current}
    out = [f"removed: {i}" for i in g if i not in c] + [f"added: {i}" for i in c if i not in g]
    for i in g.keys() & c.keys():
        a, b = g[i], c[i]
        if (a["passed"], a["expect"]) != (b["passed"], b["expect"]):
            out.append(f"VERDICT FLIPPED: {i}: passed {a['passed']} -> {b['passed']} (expect {b['expect']})")
        for k in ("theory", "measured", "se"):
            if not close(a[k], b[k]):
                out.append(f"moved: {i}.{k}: {a[k]!r} -> {b[k]!r}")
    return out


def golden(chapter: str) -> list[dict] | None:
    f = GOLDEN_DIR / f"{chapter}.json"
    return json.loads(f.read_text()) if f.exists() else None


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    results = Path(argv[0])
    chapters = argv[1:] or sorted({p.stem if p.is_file() else p.name for p in results.iterdir()
                                   if (p.suffix == ".json" or p.is_dir()) and load_results(results, p.stem if p.is_file() else p.name)})
    GOLDEN_DIR.mkdir(exist_ok=True)
    flips = 0
    for ch in chapters:
        res = load_results(results, ch)
        if res is None:
            print(f"{ch}: no results in {results}", file=sys.stderr)
            return 2
        cur, old = pin(res), golden(ch)
        diff = [] if old is None else compare(old, cur)
        flips += sum(d.startswith("VERDICT") for d in diff)
        print(f"{ch}: {'new golden file' if old is None else (f'{len(diff)} changes' if diff else 'unchanged')}")
        for d in diff:
            print("   ", d)
        (GOLDEN_DIR / f"{ch}.json").write_text(json.dumps(cur, indent=0) + "\n")
    print(f"{flips} verdicts flipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
