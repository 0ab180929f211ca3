"""The policy clauses of a comparison, matched by clause id, and the sections of every check, each from
its presenter (`auditor.report.presenter`): a check's rows, flags and title are its presenter's, a check
without one gets a row per numeric overall metric. The row primitives (`metric_row`, significance,
directions) are in the report layer, where the presenters build their rows.
"""
from __future__ import annotations

from typing import Any

from auditor.report import get_presenter, higher_is_better, significance
from auditor.report._format import as_dict, as_list, clean_text, dig
from auditor.report._rows import EPS, add_row, keys_of, metric_row
from auditor.report._values import _jsonable, _real, _text
from auditor.report.presenter import ordered_presenters, presenter_names

__all__ = ["EPS", "check_sections", "higher_is_better", "significance"]

POLICY = "policy"
POLICY_TITLE = "Policy clauses"


# -- policy clauses ------------------------------------------------------------------------------------------


def _clauses(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The policy's clauses by id; a repeated id gets " #2", " #3"..., a clause without an id its position."""
    out: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(as_list(dig(results, "policy", "clauses"))):
        if not isinstance(c, dict):
            continue
        cid = clean_text(c.get("id")) if c.get("id") not in (None, "") else f"clause {i + 1}"
        key, n = cid, 1
        while key in out:
            n += 1
            key = f"{cid} #{n}"
        out[key] = c
    return out


def _op_better(op: Any, fallback: Any) -> bool | None:
    if op in (">=", ">"):
        return True
    if op in ("<=", "<"):
        return False
    return higher_is_better(str(fallback).rsplit(".", 1)[-1]) if isinstance(fallback, str) else None


def _policy_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    cb, ca = _clauses(before), _clauses(after)
    rows: list[dict[str, Any]] = []
    for cid in keys_of(cb, ca):
        b, a = cb.get(cid), ca.get(cid)
        ref = b if b is not None else a
        assert ref is not None
        metric = _text(ref.get("metric"), 500)
        row = metric_row("policy", cid, cid, {"value": b.get("value"), "ci": b.get("ci")} if b is not None else None,
                   {"value": a.get("value"), "ci": a.get("ci")} if a is not None else None,
                   _op_better(ref.get("op"), ref.get("metric")), key_metric=True,
                   metric=metric, kind=_text(ref.get("kind"), 40), op=_text(ref.get("op"), 10),
                   threshold=_jsonable(ref.get("threshold")) if _real(ref.get("threshold")) is not None
                   else _text(ref.get("threshold"), 60),
                   severity=_text(ref.get("severity"), 40), description=_text(ref.get("description"), 500),
                   result_before=_text(b.get("result"), 40) if b is not None else None,
                   result_after=_text(a.get("result"), 40) if a is not None else None)
        add_row(rows, row)
    return rows


# -- the checks' sections ------------------------------------------------------------------------------------


def _sections(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The checks to compare: every check with a presenter, then the others either side ran, in order."""
    ran = keys_of(as_dict(before.get("checks")), as_dict(after.get("checks")))
    return [p.name for p in ordered_presenters(presenter_names() + [n for n in ran if n not in presenter_names()],
                                               compare=True)]


def check_sections(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(id, title, build) for each check's section: ``build()`` gives its rows."""
    out = []
    for name in _sections(before, after):
        p = get_presenter(name)
        b, a = as_dict(dig(before, "checks", name)), as_dict(dig(after, "checks", name))
        out.append((name, p.heading, lambda p=p, b=b, a=a: p.compare_rows(b, a)))
    return out
