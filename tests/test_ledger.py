"""The results ledger: tolerance rule, kinds, nulls, power, and soundness (unpowered entries fail)."""
import json
import math
from pathlib import Path

import pytest

from pdlt import _ledger
from pdlt._ledger import Ledger, LedgerEntry, unpowered


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


def built_results():
    """Results files of the last execution (``$PDLT_RESULTS_DIR`` or ``_build/results``), if any."""
    import os

    d = Path(os.environ.get("PDLT_RESULTS_DIR", Path(__file__).parents[1] / "_build" / "results"))
    return sorted(d.glob("*.json")) if d.exists() else []


@pytest.mark.book
@pytest.mark.parametrize("path", built_results(), ids=lambda p: p.stem)
def test_built_results_are_powered(path):
    led = json.loads(path.read_text()).get("ledger", [])
    bad = unpowered(led)
    assert not bad, "; ".join(f"{e['id']}: {LedgerEntry.from_dict(e).problem} (power {e.get('power')})"
                              for e in bad)
