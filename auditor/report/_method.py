"""Methodology and limitations: how the numbers were computed, read from the run's own parameters so
the text stays true when the parameters change. Each check's paragraphs come from its presenter
(`Presenter.methodology`, `Presenter.limitations`); the audit-wide ones (the verdict, what a probe can
say) are here, with the small helpers the presenters' sentences share. Plain sentences; the template
escapes them."""
from __future__ import annotations

from typing import Any

from auditor.report._findings import checks_in_order
from auditor.report._format import as_dict, as_list, dig, short
from auditor.report.presenter import get_presenter, ran

__all__ = ["OPERATORS", "count_or", "methodology", "pct", "whole"]


def pct(x: Any) -> str:
    """0.95 -> "95%"; "the configured" for anything that is not a number."""
    return f"{x * 100:g}%" if isinstance(x, (int, float)) and not isinstance(x, bool) else "the configured"


def count_or(x: Any, default: str = "the configured number of") -> str:
    """A whole number with thousands separators, else ``default``."""
    return f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) else default


OPERATORS = {
    "fill": "filled with a constant colour, which removes colour and texture",
    "blur": "blended with a blurred copy of the image, which keeps colour",
    "pyramid": "replaced by a level of a blur pyramid that the mask value selects, which keeps colour",
}


def whole(x: Any) -> str | None:
    """A positive whole number from the parameters as text ("32"), else None."""
    return f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) and x > 0 else None


def _limitations(results: dict[str, Any]) -> list[str]:
    probe = as_dict(results.get("probe"))
    out = []
    n = probe.get("n")
    src = short(probe.get("source") or "the probe", 200)
    out.append(f"The numbers describe this model on {src}" + (f" ({count_or(n, '?')} images)" if n is not None else "") +
               ". They say nothing about images unlike these: other cameras, lighting, ages, or populations the probe "
               "does not contain. A pass is evidence about this probe, not a proof of fairness.")
    if probe.get("format") == "synth" or str(probe.get("source") or "").startswith("synth:"):
        out.append("The probe is synthetic: its images are generated, with planted attributes and cues. It shows how the "
                   "model reacts to those planted differences; it is not a measurement on real faces.")
    out.append("Group membership comes from the probe's annotations (gender, age, race as recorded there). Such labels can "
               "be wrong, coarse or imposed (e.g. binary gender); the audit inherits their errors and categories.")
    out.append("Group metrics measure differences in outcomes, not their causes. Some fairness criteria cannot all hold at "
               "once when base rates differ between groups (e.g. equal selection rates and equal error rates), so the "
               "policy decides which ones matter.")
    skipped = probe.get("n_skipped")
    for name, check in checks_in_order(results):
        if ran(check):
            out += get_presenter(name).limitations(check, results)
    if isinstance(skipped, int) and skipped > 0:
        out.append(f"{skipped} probe image(s) could not be read and were left out.")
    errored = [short(n) for n, c in as_dict(results.get("checks")).items() if as_dict(c).get("status") == "error"]
    if errored:
        out.append("Checks that errored measured nothing: " + ", ".join(errored) + ".")
    return out


def methodology(results: dict[str, Any]) -> dict[str, Any]:
    """Paragraphs for the Methodology and limitations section: each check's from its presenter, in their order."""
    policy = as_dict(results.get("policy"))
    verdict = [
        ("A blocker clause that fails makes the verdict FAIL; otherwise a blocker clause without enough data "
         "(a group under the minimum size, an errored check) makes it INCONCLUSIVE; otherwise it is PASS. Warning "
         "clauses are reported but never change the verdict."),
        ("A clause with “whole interval” passes only when its value and its entire interval clear the threshold; "
         "otherwise the point estimate decides."),
    ]
    if any(as_dict(c).get("kind") == "regression" for c in as_list(policy.get("clauses"))) or policy.get("baseline"):
        verdict.append("Regression clauses compare each value with the same value in a baseline audit's results.json; "
                       "with “if significant”, only a worsening beyond the allowance that is significant in a one-sided "
                       "z-test (standard errors read from the two intervals) fails.")
    checks = []
    for name, check in checks_in_order(results):
        p = get_presenter(name)
        paragraphs = p.methodology(check, results) if ran(check) else []
        if paragraphs:
            checks.append({"title": p.method_title or f"How the {short(name)} check works", "paragraphs": paragraphs})
    return {"checks": checks, "verdict": verdict, "limitations": _limitations(results)}
