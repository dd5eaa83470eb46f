"""Pinned numbers: each sampler family draws the same first networks as when its golden file was made.

The chapters' golden ledgers are compared in tests/test_book.py (they need the built book).
"""
from __future__ import annotations

import json
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "golden"))
import ledger as golden_ledger  # noqa: E402
import samplers as golden_samplers  # noqa: E402

GOLDEN = json.loads(golden_samplers.GOLDEN.read_text())


@pytest.mark.parametrize("family", sorted(GOLDEN))
def test_sampler_digest(family):
    cur = golden_samplers.compute([family])[family]
    want = GOLDEN[family]
    assert cur["count"] == want["count"], f"{family}: {cur['count']} numbers, golden {want['count']}"
    assert cur["digest"] == want["digest"], (
        f"{family}: the first networks changed (head {cur['head']} vs golden {want['head']}); "
        "if deliberate, regenerate with `python tests/golden/samplers.py` in a commit of its own")


def test_every_chapter_has_a_golden_ledger():
    from pdlt.run import chapter_id, find_chapters

    missing = [chapter_id(p) for p in find_chapters(ROOT / "book")
               if golden_ledger.golden(chapter_id(p)) is None]
    assert not missing, f"no golden ledger for {missing}: `python tests/golden/ledger.py _build/results`"


def test_compare_sees_moves_and_flips():
    g = [{"id": "a", "theory": 1.0, "measured": 1.1, "se": 0.1, "passed": True, "expect": "pass"}]
    assert golden_ledger.compare(g, g) == []
    moved = [dict(g[0], measured=1.1 * (1 + 1e-6))]
    diff = golden_ledger.compare(g, moved)
    assert len(diff) == 1 and diff[0].startswith("moved: a.measured: 1.1 -> 1.10000")
    flipped = [dict(g[0], passed=False)]
    assert golden_ledger.compare(g, flipped)[0].startswith("VERDICT FLIPPED: a")
    assert golden_ledger.compare(g, []) == ["removed: a"]


def test_compare_on_another_processor_allows_only_last_bit_drift():
    g = [{"id": "a", "theory": 1.0, "measured": 1.1, "se": 0.2, "passed": True, "expect": "pass"}]

    def moved(**kw):
        return [dict(g[0], **kw)]

    assert golden_ledger.compare(g, moved(measured=1.1 + 1e-4), same_machine=False) == []
    assert golden_ledger.compare(g, moved(measured=1.1 + 1e-4))          # bitwise on the same machine
    assert golden_ledger.compare(g, moved(measured=1.1 + 0.01), same_machine=False)   # 5% of the SE
    assert golden_ledger.compare(g, moved(theory=1.0 + 1e-5), same_machine=False)
    assert any(d.startswith("VERDICT") for d in
               golden_ledger.compare(g, moved(measured=1.1 + 1e-4, passed=False), same_machine=False))
    assert len(golden_ledger.machine_signature()) == 16
    assert golden_ledger.machine_signature() == golden_ledger.machine_signature()
