"""The golden ledger: every chapter's entries at CI scale (id, theory, measured, se, verdict).

``python tests/golden/ledger.py RESULTS [CHAPTER ...]`` reads ``RESULTS/<chapter>.json`` (the book
build's ``_build/results``) or ``RESULTS/<chapter>/results.json`` (a ``pdlt.run`` output folder),
prints what changed against the committed golden files (entries added or removed, values moved,
verdicts flipped) and rewrites ``tests/golden/ledger/<chapter>.json``. ``tests/test_book.py``
compares each built chapter with its golden file.

Bitwise agreement holds on the machine that wrote a golden file: XLA's CPU kernels choose their
blocking (hence the order of long sums) from the processor's vector units and caches, so another
processor moves the last bits, and a chapter that trains networks for hundreds of steps amplifies
them. Each file's machine is recorded in ``machines.json`` (:func:`machine_signature`); on another
machine the comparison allows a measured value or SE to move by ``CROSS_MACHINE_SE`` of the golden
SE (or of the entry's tolerance, for deterministic entries) and a theory value by ``CROSS_MACHINE_RTOL``, and still requires every verdict to be the same.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
from pathlib import Path

GOLDEN_DIR = Path(__file__).with_name("ledger")
FIELDS = ("id", "theory", "measured", "se", "passed", "expect")
RTOL = 1e-9  # same computation, same machine: equal up to the last bits of a reduction order
CROSS_MACHINE_SE = 0.01  # another processor: a measured value or SE may move by 1% of its SE (or tolerance)
CROSS_MACHINE_RTOL = 1e-6  # ... and a deterministic value by one part in a million
MACHINES = Path(__file__).with_name("machines.json")


def machine_signature() -> str:
    """A short hash of what decides XLA's CPU code: architecture, processor model, flags, cache, cores."""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            k = k.strip()
            if k in ("model name", "flags", "cache size") and k not in info:
                info[k] = " ".join(sorted(v.split())) if k == "flags" else v.strip()
    except OSError:
        info["processor"] = platform.processor()
    info["machine"], info["cores"] = platform.machine(), str(os.cpu_count())
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]


def machine_of(chapter: str) -> str | None:
    """The signature of the machine that wrote the chapter's golden file (None: not recorded)."""
    try:
        return json.loads(MACHINES.read_text()).get(chapter)
    except OSError:
        return None


def load_results(results: Path, chapter: str) -> dict | None:
    for f in (results / f"{chapter}.json", results / chapter / "results.json"):
        if f.exists():
            return json.loads(f.read_text())
    return None


def pin(res: dict) -> list[dict]:
    return [{k: e.get(k) for k in FIELDS} for e in res["ledger"]]


def close(a, b, rtol=RTOL, atol=0.0) -> bool:
    if a is None or b is None:
        return a is b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + atol + 1e-300


def compare(golden: list[dict], current: list[dict], same_machine: bool = True,
            tols: dict | None = None) -> list[str]:
    """Differences between a golden and a current ledger, one line each (empty when they match).

    ``same_machine=False`` (the golden file was written on another processor): measured values and
    SEs may move by ``CROSS_MACHINE_SE`` times the larger of the golden SE and the entry's tolerance
    (``tols``: id -> the current ledger's ``tol``), theory values by ``CROSS_MACHINE_RTOL``.
    """
    g, c = {e["id"]: e for e in golden}, {e["id"]: e for e in current}
    out = [f"removed: {i}" for i in g if i not in c] + [f"added: {i}" for i in c if i not in g]
    for i in g.keys() & c.keys():
        a, b = g[i], c[i]
        if (a["passed"], a["expect"]) != (b["passed"], b["expect"]):
            out.append(f"VERDICT FLIPPED: {i}: passed {a['passed']} -> {b['passed']} (expect {b['expect']})")
        scale = [abs(float(v)) for v in (a.get("se"), (tols or {}).get(i)) if v not in (None, "")]
        se = max([v for v in scale if not math.isnan(v)], default=0.0)
        for k in ("theory", "measured", "se"):
            if same_machine:
                ok = close(a[k], b[k])
            else:
                ok = close(a[k], b[k], CROSS_MACHINE_RTOL, CROSS_MACHINE_SE * se if k != "theory" else 0.0)
            if not ok:
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
        diff = [] if old is None else compare(old, cur, machine_of(ch) == machine_signature(),
                                                tols={e['id']: e.get('tol') for e in res['ledger']})
        flips += sum(d.startswith("VERDICT") for d in diff)
        print(f"{ch}: {'new golden file' if old is None else (f'{len(diff)} changes' if diff else 'unchanged')}")
        for d in diff:
            print("   ", d)
        (GOLDEN_DIR / f"{ch}.json").write_text(json.dumps(cur, indent=0) + "\n")
        machines = json.loads(MACHINES.read_text()) if MACHINES.exists() else {}
        machines[ch] = machine_signature()
        MACHINES.write_text(json.dumps(dict(sorted(machines.items())), indent=1) + "\n")
    print(f"{flips} verdicts flipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
