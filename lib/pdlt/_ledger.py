"""The results ledger: one entry per quantitative claim a chapter checks.

An entry records the chapter, the book's equation or section, the quantity, the theory value
(computed by the library), the measured value with its standard error (from an ensemble), the
tolerance rule fixed before the run, whether it passed, and whether it was *expected* to pass:
negative controls (a wrong constant, an off-critical initialization) are entries with
``expect="fail"`` that must be rejected by the same rule. ``ok`` is True when the outcome is the
expected one; the tests fail on any entry that is not ``ok``.

The rule for a statistical entry is ``|measured - theory| <= z*se + bias + rtol*|theory|``, where
``z`` (default 4.5, a two-sided false-alarm rate of 7e-6), the ``bias`` budget (a stated
O(1/n) term) and ``rtol`` are chosen before the run. A deterministic entry has ``se = 0``.

Kinds and power. Every entry has a ``kind``: ``"measured"`` (theory against an independent Monte
Carlo or training run), ``"exact"`` (numerics against a closed form derived independently) or
``"consistency"`` (one piece of our own algebra computed two ways). An entry also names its
``null``: the value a wrong or trivial theory would give (0, the infinite-width value, the
leading-order value, the other class constant), with ``null_label`` saying which. Its ``power`` is
``|theory - null| / tolerance`` with ``tolerance = z*se + bias + rtol*|theory| + atol``; an entry
expected to pass is *powered* when ``power > 1`` (the rule could have rejected the null). Where the
predicted value is itself the trivial one (a quantity predicted to vanish), ``null`` is the size of
the alternative effect the check rules out.

Soundness. An entry is *ok* when its outcome is the expected one **and** it is sound: it names a
null, and, if it is expected to pass and is not ``kind="consistency"``, it is powered. So an
unpowered check fails its chapter (``Ledger.failures()``, the chapter's ``finish``, the runner's
exit status and the book's tests all read ``ok``) exactly as a failed one does; the verdict says
which (``"pass, UNPOWERED"``, ``"pass, NO NULL"``). Whether power is required is decided by the
entry itself: by its ``expect`` (negative controls feed the null as theory, so their power is 0)
and its ``kind`` (a consistency entry compares our algebra with itself; it is shown, never counted
as verification). :func:`unpowered` lists the offending entries of any list of entries (objects or
the dicts of a results file).
"""
from __future__ import annotations

import dataclasses
import math

__all__ = ["Z_DEFAULT", "KINDS", "POWER_MIN", "LedgerEntry", "Ledger", "within", "tolerance", "unpowered",
           "anchor"]

KINDS = ("measured", "exact", "consistency")

Z_DEFAULT = 4.5

POWER_MIN = 1.0  # an entry expected to pass must have power > POWER_MIN


def anchor(chapter: str, id: str) -> str:
    """The HTML id of the row of entry ``id`` of ``chapter`` (the ledger page links to it)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in f"{chapter}-{id}")
    return f"check-{safe}".lower()


def tolerance(theory, se=0.0, *, z=Z_DEFAULT, bias=0.0, rtol=0.0, atol=0.0) -> float:
    """The half-width of the ledger rule: ``z*se + bias + rtol*|theory| + atol``."""
    return z * float(se) + float(bias) + float(rtol) * abs(float(theory)) + float(atol)


def within(measured, theory, se=0.0, *, z=Z_DEFAULT, bias=0.0, rtol=0.0, atol=0.0) -> bool:
    """The ledger rule: ``|measured - theory| <= z*se + bias + rtol*|theory| + atol``."""
    m, t = float(measured), float(theory)
    if not (math.isfinite(m) and math.isfinite(t)):
        return False
    return abs(m - t) <= tolerance(t, se, z=z, bias=bias, rtol=rtol, atol=atol)


@dataclasses.dataclass
class LedgerEntry:
    id: str
    chapter: str
    equation: str
    quantity: str
    theory: float
    measured: float
    se: float
    rule: str
    passed: bool
    expect: str = "pass"
    note: str = ""
    kind: str = "measured"
    null: float | None = None
    null_label: str = ""
    tol: float = 0.0

    @property
    def power(self) -> float | None:
        """``|theory - null| / tolerance`` (inf for an exact rule with a distinct null); None without a null."""
        if self.null is None:
            return None
        gap = abs(self.theory - self.null)
        if self.tol == 0.0:
            return math.inf if gap > 0 else 0.0
        return gap / self.tol

    @property
    def powered(self) -> bool:
        p = self.power
        return p is not None and p > POWER_MIN

    @property
    def needs_power(self) -> bool:
        """Expected to pass and not a consistency check: must be powered."""
        return self.expect == "pass" and self.kind != "consistency"

    @property
    def problem(self) -> str:
        """Why a sound outcome is still not ok: ``"no null"``, ``"unpowered"``, or ``""``."""
        if self.null is None:
            return "no null"
        if self.needs_power and not self.powered:
            return "unpowered"
        return ""

    @property
    def outcome_ok(self) -> bool:
        """The outcome alone is the expected one (passed iff expected to pass)."""
        return self.passed == (self.expect == "pass")

    @property
    def ok(self) -> bool:
        """The expected outcome, with a null, powered where power is required."""
        return self.outcome_ok and not self.problem

    @property
    def deviation_sigma(self) -> float | None:
        return None if not self.se else (self.measured - self.theory) / self.se

    def verdict(self) -> str:
        if self.expect == "pass":
            v = "pass" if self.passed else "FAIL"
        else:
            v = "control rejected" if not self.passed else "CONTROL ACCEPTED"
        p = self.problem
        return f"{v}, {p.upper()}" if p else v

    @property
    def anchor(self) -> str:
        return anchor(self.chapter, self.id)

    def _repr_html_(self) -> str:  # one row when an entry is the last value of a notebook cell
        return _table_html([self])

    def _repr_markdown_(self) -> str:
        dev = self.deviation_sigma
        extra = "" if dev is None else f", Δ = {dev:+.2f} SE"
        mark = "✓" if self.ok else "✗"
        return (f"{mark} ledger `{self.id}` ({self.kind}): {self.verdict()} (theory {self.theory:.6g}, "
                f"measured {self.measured:.6g}{extra})")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["ok"] = self.ok
        d["deviation_sigma"] = self.deviation_sigma
        p = self.power
        d["power"] = None if p is None else (None if math.isinf(p) else p)
        d["powered"] = self.powered
        d["needs_power"] = self.needs_power
        d["problem"] = self.problem
        d["verdict"] = self.verdict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LedgerEntry":
        """An entry from the dict of a results file (extra keys ignored; missing optional ones defaulted)."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _as_entry(e) -> LedgerEntry:
    return e if isinstance(e, LedgerEntry) else LedgerEntry.from_dict(e)


def unpowered(entries) -> list:
    """The entries (objects or results-file dicts) without a null, or expected to pass, not
    consistency checks, and with power <= 1: each would make its chapter fail."""
    return [e for e in entries if _as_entry(e).problem]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _table_html(entries, caption: str = "") -> str:
    """A compact HTML table of entries, one row each (with the row's anchor id)."""
    from html import escape

    head = ("id", "kind", "quantity", "theory", "measured ± SE", "tolerance", "null", "power", "z", "verdict")
    rows = []
    for e in entries:
        dev = e.deviation_sigma
        p = e.power
        null = "—" if e.null is None else f"{_fmt(e.null)} ({escape(e.null_label)})" if e.null_label else _fmt(e.null)
        cls = "pdlt-ok" if e.ok else "pdlt-bad"
        cells = (f"<code>{escape(e.id)}</code>", escape(e.kind), escape(e.quantity) +
                 (f' <span class="pdlt-eq">[{escape(e.equation)}]</span>' if e.equation else ""),
                 _fmt(e.theory), _fmt(e.measured) + (f" ± {e.se:.2g}" if e.se else ""), f"{e.tol:.2g}",
                 null, "—" if p is None else ("∞" if math.isinf(p) else f"{p:.3g}"),
                 "" if dev is None else f"{dev:+.2f}", escape(e.verdict()))
        rows.append(f'<tr id="{e.anchor}" class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return ('<div class="pdlt-checks-wrap"><table class="pdlt-checks">' + cap + "<thead><tr>"
            + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></div>")


class ChecksTable:
    """Entries shown as one compact table (HTML in Jupyter and the book, text elsewhere)."""

    def __init__(self, entries, caption: str = ""):
        self.entries, self.caption = list(entries), caption

    def _repr_html_(self) -> str:
        return _table_html(self.entries, self.caption)

    def __repr__(self) -> str:
        return "\n".join(f"{'✓' if e.ok else '✗'} {e.id} [{e.kind}]: {e.verdict()} (theory {e.theory:.6g}, "
                         f"measured {e.measured:.6g}" + (f" ± {e.se:.2g}" if e.se else "") + ")"
                         for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)


class Ledger:
    """The entries of one chapter, in the order they were checked."""

    def __init__(self, chapter: str):
        self.chapter = chapter
        self.entries: list[LedgerEntry] = []
        self._shown = 0

    def section(self, caption: str = "") -> ChecksTable:
        """The entries recorded since the previous ``section()`` call, as one compact table.

        End a section's check cell with ``ch.ledger.section()``: its checks render as a table
        whose rows carry the anchors the ledger page links to.
        """
        new = self.entries[self._shown:]
        self._shown = len(self.entries)
        return ChecksTable(new, caption)

    def check(self, id: str, *, equation: str, quantity: str, theory, measured, se=0.0,
              z: float = Z_DEFAULT, bias: float = 0.0, rtol: float = 0.0, atol: float = 0.0,
              expect: str = "pass", note: str = "", kind: str | None = None, null=None,
              null_label: str = "") -> LedgerEntry:
        """Record one claim; returns the entry (``entry.passed``, ``entry.ok``).

        Args:
          id: short unique id within the chapter (e.g. ``"relu-V-n16"``).
          equation: the book's equation or section (e.g. ``"eq. (5.53)"`` or ``"§5.4"``).
          quantity: what is compared, in words or symbols.
          theory, measured, se: numbers (``se = 0`` for deterministic checks).
          z, bias, rtol, atol: the tolerance rule, fixed before the run.
          expect: ``"pass"``, or ``"fail"`` for a negative control.
          kind: ``"measured"``, ``"exact"`` or ``"consistency"``; default ``"measured"`` when
            ``se > 0``, else ``"exact"``.
          null, null_label: the value a wrong or trivial theory would give, and which one it is
            (e.g. ``null=0.0, null_label="0"``, ``null=K_inf, null_label="infinite width"``).
        """
        if expect not in ("pass", "fail"):
            raise ValueError(f"Ledger.check: `expect` must be 'pass' or 'fail', got {expect!r}")
        if kind is None:
            kind = "measured" if float(se) else "exact"
        if kind not in KINDS:
            raise ValueError(f"Ledger.check: `kind` must be one of {KINDS}, got {kind!r}")
        if null is not None:
            null = float(null)
            if not math.isfinite(null):
                raise ValueError(f"Ledger.check: `null` must be finite, got {null!r}")
        if any(e.id == id for e in self.entries):
            raise ValueError(f"Ledger.check: duplicate entry id {id!r} in chapter {self.chapter}")
        theory, measured, se = float(theory), float(measured), float(se)
        parts = []
        if se:
            parts.append(f"{z:g}σ")
        if bias:
            parts.append(f"bias {bias:.3g}")
        if rtol:
            parts.append(f"rtol {rtol:.1e}")
        if atol:
            parts.append(f"atol {atol:.1e}")
        rule = "|Δ| ≤ " + " + ".join(parts) if parts else "exact"
        passed = within(measured, theory, se, z=z, bias=bias, rtol=rtol, atol=atol)
        tol = tolerance(theory, se, z=z, bias=bias, rtol=rtol, atol=atol)
        e = LedgerEntry(id, self.chapter, equation, quantity, theory, measured, se, rule, passed, expect, note,
                        kind, null, null_label, tol)
        self.entries.append(e)
        return e

    @property
    def all_ok(self) -> bool:
        return all(e.ok for e in self.entries)

    def failures(self) -> list[LedgerEntry]:
        """Entries not ok: an unexpected outcome, no null, or unpowered where power is required."""
        return [e for e in self.entries if not e.ok]

    def to_list(self) -> list[dict]:
        return [e.to_dict() for e in self.entries]
