"""The JUnit XML report (``report.junit.xml``): the policy as a test suite that CI systems show.

One ``<testsuite>`` for the policy, one ``<testcase>`` per clause (``classname`` = policy name,
``name`` = clause id). What each clause result becomes follows the verdict rule, so the test report
fails exactly when the audit's exit code does:

- ``pass``: a passing testcase (the measured value in ``<system-out>``);
- ``fail`` of a blocker: ``<failure type="blocker">``;
- ``insufficient_data`` or ``borderline`` of a blocker: ``<failure type="inconclusive">`` (an
  inconclusive verdict fails the gate), or ``<skipped>`` when the audit ran with ``--allow-inconclusive``;
- ``not_run`` (the clause's check was left out of ``--checks``): ``<skipped>`` with the reason, since
  such a clause does not count towards the verdict;
- a failed or undecided warning clause: ``<skipped>`` with the finding as its message. Warnings never
  fail the gate; GitHub and GitLab test reports show skipped tests, with their message, apart from
  passes, so a warning stays visible without turning the test report red.

If the verdict fails the gate and no clause explains it, a ``verdict`` testcase fails.

A second ``<testsuite>`` ("auditor checks") has one ``<testcase>`` per check in the results (``classname``
= ``checks``, ``name`` = the check), its status and its presenter's headline numbers in ``<system-out>``.
It never fails: only the verdict decides the gate (an errored check shows there through the clauses that
need it), so an errored check's testcase is ``<skipped>`` with the error as its message. Built with
`xml.etree.ElementTree` (which escapes ``& < > "``); control characters, which XML 1.0 cannot hold,
become U+FFFD first.
"""
from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from typing import Any

from auditor.report._findings import (
    clause_requirement, clause_sentence, UNDECIDED, clauses, inconclusive_sentence, verdict_of, verdict_sentence
)
from auditor.report.presenter import get_presenter
from auditor.report._format import as_dict, as_list, clean_text, dig, fmt_num, fmt_p, fmt_p_of, metric_ci, metric_value, short

__all__ = ["allows_inconclusive", "render_junit"]

MAX_MESSAGE = 500
MAX_TEXT = 4000


def allows_inconclusive(results: dict[str, Any]) -> bool:
    """Whether the audit ran with ``--allow-inconclusive``: recorded in the results, or in the command."""
    for value in (results.get("allow_inconclusive"), dig(results, "policy", "allow_inconclusive")):
        if isinstance(value, bool):
            return value
    return "--allow-inconclusive" in str(results.get("command") or "").split()


def _text(x: Any, width: int = MAX_TEXT) -> str:
    text = clean_text(x)
    return text if len(text) <= width else text[: width - 1] + "…"


NOT_MEASURED = "not measured"


def _reason(x: Any) -> str | None:
    """A recorded reason: a non-empty string, else None (never a stray value written out)."""
    return short(x, 600) if isinstance(x, str) and x.strip() else None


def _fmt(x: Any, reason: Any = None, *, p: bool = False) -> str:
    """Every value a JUnit message shows goes through here, so none reads as a Python literal: numbers as the
    report writes them (three decimals; ``p``: a p-value, "<0.001" below a thousandth), booleans yes/no, a missing
    or non-finite value "not measured" (with ``reason`` when one is recorded), a metric entry its value and interval."""
    if isinstance(x, dict) and "value" in x:
        text = _fmt(x.get("value"), x.get("reason") if reason is None else reason)
        ci = metric_ci(x)
        return text + (f" [{fmt_num(ci[0])}, {fmt_num(ci[1])}]" if ci is not None and metric_value(x) is not None else "")
    if isinstance(x, bool):
        return "yes" if x else "no"
    if x is None or isinstance(x, float) and not math.isfinite(x):
        why = _reason(reason)
        return f"{NOT_MEASURED} ({why})" if why else NOT_MEASURED
    if isinstance(x, (int, float)):
        return fmt_p(x) if p else fmt_num(x)
    if isinstance(x, (list, tuple)):
        return ", ".join(_fmt(v) for v in x) or NOT_MEASURED
    return short(x, 300)


def _details(c: dict[str, Any]) -> str:
    head = (f"clause: {short(c.get('id') or '?', 300)} ({short(c.get('severity') or 'unspecified', 30)}, "
            f"{short(c.get('kind') or 'threshold', 30)})")
    measured = metric_value(c) is not None
    lines = [head,
             f"metric: {short(c.get('metric') or '', 300)}",
             f"measured: {_fmt({'value': c.get('value'), 'ci': c.get('ci')}, c.get('reason'))}",
             f"required: {clause_requirement(c)}"]
    if c.get("kind") == "regression":
        lines.append(f"baseline: {_fmt(c.get('baseline_value'))}, change: {_fmt(c.get('delta'))}")
    if c.get("p_adjusted") is not None:
        lines.append(f"adjusted p: {fmt_p_of(c) if metric_value(c.get('p_adjusted')) is not None else NOT_MEASURED}, "
                     f"significant: {_fmt(c.get('significant'))}")
    elif c.get("p_value") is not None:
        lines.append(f"p: {fmt_p_of(c, 'p_value')}")
    if measured and _reason(c.get("reason")):  # unmeasured: the reason is in the measured line
        lines.append(f"reason: {_reason(c.get('reason'))}")
    maps = [short(m, 200) for m in as_list(c.get("maps_to")) if isinstance(m, str) and m.strip()]
    if maps:
        lines.append("maps to: " + "; ".join(maps))
    return "\n".join(lines)


def _case(suite: ET.Element, policy: str, c: dict[str, Any], results: dict[str, Any], allow: bool) -> str:
    """Add one testcase; return its outcome: passed, failure or skipped."""
    case = ET.SubElement(suite, "testcase", classname=_text(policy, 300), name=_text(c.get("id") or "?", 300), time="0")
    result = str(c.get("result") or "").lower()
    blocker = c.get("severity") == "blocker"
    outcome = "passed"
    if result == "fail" and blocker:
        ET.SubElement(case, "failure", type="blocker", message=_text(clause_sentence(c, results), MAX_MESSAGE)).text = _text(_details(c))
        outcome = "failure"
    elif result in UNDECIDED and blocker and not allow:
        msg = inconclusive_sentence(results, c)
        ET.SubElement(case, "failure", type="inconclusive", message=_text(msg, MAX_MESSAGE)).text = _text(_details(c))
        outcome = "failure"
    elif result != "pass":
        if result == "fail":
            msg = "warning (does not fail the gate): " + clause_sentence(c, results)
        elif result == "not_run":
            msg = f"not run, does not count: {_reason(c.get('reason')) or 'its check was not run'}"
        elif result in UNDECIDED:
            msg = ("inconclusive, allowed by --allow-inconclusive: " if blocker else "warning, undecided: ") + inconclusive_sentence(results, c)
        else:
            msg = f"result {short(result or 'missing', 40)}"
        ET.SubElement(case, "skipped", message=_text(msg, MAX_MESSAGE))
        outcome = "skipped"
    if outcome != "failure":  # a failure carries the same details in its body
        ET.SubElement(case, "system-out").text = _text(_details(c))
    return outcome


def _check_case(suite: ET.Element, name: str, check: dict[str, Any], results: dict[str, Any]) -> str:
    """Add the testcase of one check; return its outcome: passed or skipped (never a failure)."""
    case = ET.SubElement(suite, "testcase", classname="checks", name=_text(name, 300),
                         time=f"{check['seconds']:.3f}" if _seconds(check.get("seconds")) else "0")
    status = short(check.get("status") or "unknown", 30).lower()
    lines = [f"check: {short(name, 80)}", f"status: {status}"]
    if status == "error":
        message = f"check errored (the verdict decides the gate): {short(check.get('error') or 'no message', 400)}"
        ET.SubElement(case, "skipped", message=_text(message, MAX_MESSAGE))
    else:
        try:
            lines += [short(line, 600) for line in get_presenter(name).junit(check, results)]
        except Exception as exc:  # noqa: BLE001 - a presenter's bug must not cost the gate its report
            lines.append(f"headline not available: {exc.__class__.__name__}")
    ET.SubElement(case, "system-out").text = _text("\n".join(lines))
    return "skipped" if status == "error" else "passed"


def _seconds(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0


def _counts(outcomes: list[str]) -> dict[str, int]:
    return {"tests": len(outcomes), "failures": outcomes.count("failure"), "errors": 0, "skipped": outcomes.count("skipped")}


def render_junit(results: dict[str, Any], *, allow_inconclusive: bool | None = None) -> bytes:
    """The JUnit XML document (UTF-8 bytes) for ``results``."""
    results = as_dict(results)
    allow = allows_inconclusive(results) if allow_inconclusive is None else allow_inconclusive
    policy = as_dict(results.get("policy"))
    name = str(policy.get("name") or "policy")
    verdict = verdict_of(results)
    seconds = dig(results, "cost", "seconds_total")
    time = f"{seconds:.3f}" if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else "0"
    root = ET.Element("testsuites", name="auditor")
    suite = ET.SubElement(root, "testsuite", name=_text(f"auditor policy {name}", 300), timestamp=_text(results.get("created") or "", 40),
                          time=time)
    props = ET.SubElement(suite, "properties")
    model = as_dict(results.get("model"))
    probe = as_dict(results.get("probe"))
    for key, value in (("verdict", verdict), ("policy_version", policy.get("version")), ("policy_source", policy.get("source")),
                       ("policy_sha256", policy.get("sha256")), ("model", model.get("name") or model.get("source")),
                       ("model_sha256", model.get("sha256")), ("probe", probe.get("source")), ("probe_sha256", probe.get("sha256")),
                       ("allow_inconclusive", str(allow).lower())):
        if value not in (None, ""):
            ET.SubElement(props, "property", name=key, value=_text(value, 300))
    outcomes = [_case(suite, name, c, results, allow) for c in clauses(results)]
    gate_fails = verdict == "fail" or (verdict == "inconclusive" and not allow)
    if gate_fails and "failure" not in outcomes:
        case = ET.SubElement(suite, "testcase", classname=_text(name, 300), name="verdict", time="0")
        ET.SubElement(case, "failure", type="verdict", message=_text(verdict_sentence(results), MAX_MESSAGE))
        outcomes.append("failure")
    elif not outcomes:
        case = ET.SubElement(suite, "testcase", classname=_text(name, 300), name="verdict", time="0")
        ET.SubElement(case, "skipped", message=_text(verdict_sentence(results), MAX_MESSAGE))
        outcomes.append("skipped")
    out = [verdict_sentence(results)] + [f"policy warning: {short(w, 600)}" for w in as_list(policy.get("warnings"))]
    ET.SubElement(suite, "system-out").text = _text("\n".join(out))
    errors = [f"check {short(n, 80)} errored: {short(as_dict(c).get('error') or 'no message', 600)}"
              for n, c in as_dict(results.get("checks")).items() if as_dict(c).get("status") == "error"]
    if errors:
        ET.SubElement(suite, "system-err").text = _text("\n".join(errors))
    checks = [(str(n), as_dict(c)) for n, c in as_dict(results.get("checks")).items()]
    if checks:
        check_suite = ET.SubElement(root, "testsuite", name="auditor checks", timestamp=_text(results.get("created") or "", 40),
                                    time=time)
        check_outcomes = [_check_case(check_suite, n, c, results) for n, c in checks]
        for key, value in _counts(check_outcomes).items():
            check_suite.set(key, str(value))
        outcomes_all = outcomes + check_outcomes
    else:
        outcomes_all = outcomes
    for key, value in _counts(outcomes).items():
        suite.set(key, str(value))
    for key, value in _counts(outcomes_all).items():
        root.set(key, str(value))
    root.set("time", time)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    buf = io.BytesIO()
    tree.write(buf, encoding="utf-8", xml_declaration=True)
    return buf.getvalue() + b"\n"
