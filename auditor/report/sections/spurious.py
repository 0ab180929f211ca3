"""The spurious part of the report: confirmed cues, their per-group flip rates, the overall evidence
metrics, the unconfirmed candidates and the off-subject share by group, as plain values.

The same view feeds the HTML/PDF report and the Markdown summary (the ``*_text`` fields are plain text
made only of our own number formatting). A ``checks.spurious`` entry that is not in the check's
schema (none of ``overall``, ``summary``, ``candidates``, ``not_predicted`` in its metrics) gives None,
and the report falls back to the generic tree, so nothing recorded is hidden.
"""
from __future__ import annotations

from typing import Any

from auditor.report._format import NA, as_dict, as_list, fmt_num, fmt_plain, metric_value, short

__all__ = ["box_text", "spurious_view"]

SCHEMA_KEYS = ("overall", "summary", "candidates", "not_predicted")
NO_CUE = "No cue was confirmed."
NO_BOXES = "unknown (no subject boxes)"
MAX_FINDINGS = 20
MAX_CANDIDATES = 30
MAX_GROUP_ROWS = 40
MAX_CLASSES = 40
CLASS_WIDTH = 80


def _int(x: Any) -> int | None:
    v = metric_value(x)
    return int(v) if v is not None and v == int(v) else None


def box_text(box: Any, size: Any = None) -> str:
    """ "48,0 – 64,16 of 64×64" (x0,y0 – x1,y1 in input pixels, end exclusive; the frame is W×H), or "n/a"."""
    corners = [_int(v) for v in as_list(box)]
    if len(corners) != 4 or None in corners:
        return NA
    text = "{},{} – {},{}".format(*corners)
    hw = [_int(v) for v in as_list(size)]
    return text + (f" of {hw[1]}×{hw[0]}" if len(hw) == 2 and None not in hw else "")


def _rate(x: Any) -> str:
    return fmt_num(metric_value(x))


def _arm(f: dict[str, Any], arm: str) -> dict[str, Any]:
    """One arm (removal or transplant) of a tested region: the cue's flip rate, the control's, n, as text too."""
    rate, control, n = f.get(f"{arm}_flip_rate"), f.get(f"control_{arm}_flip_rate"), _int(f.get(f"n_{arm}"))
    text = f"{_rate(rate)} vs control {_rate(control)}" + (f" (n={n})" if n is not None else "")
    return {"rate": metric_value(rate), "control": metric_value(control), "n": n, "text": text}


def _off_subject(x: Any) -> tuple[float | None, str]:
    v = metric_value(x)
    return v, (NO_BOXES if v is None else fmt_num(v))


def _group_rows(by_group: Any, row: Any) -> tuple[list[dict[str, Any]], int]:
    """One row per (attribute, group) of ``{attribute: {group: entry}}``: its names and ``row(entry)``; capped."""
    rows = [{"attribute": short(attr, 60), "group": short(group), **row(as_dict(g))}
            for attr, groups in as_dict(by_group).items() for group, g in as_dict(groups).items()]
    return rows[:MAX_GROUP_ROWS], max(0, len(rows) - MAX_GROUP_ROWS)


def _flip_row(g: dict[str, Any]) -> dict[str, Any]:
    return {"removal": _arm(g, "removal"), "transplant": _arm(g, "transplant")}


def _share_row(g: dict[str, Any]) -> dict[str, Any]:
    share = g.get("off_subject_share")
    return {"n": _int(g.get("n")), "share": share if isinstance(share, dict) else {"value": share}}


def _region(f: Any, size: Any, figures: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A tested region (finding or candidate) as table values."""
    f = as_dict(f)
    off, off_text = _off_subject(f.get("off_subject"))
    groups, more = _group_rows(f.get("by_group"), _flip_row)
    name = f.get("figure")
    verdict = f.get("verdict")
    if not isinstance(verdict, str) or not verdict.strip():
        verdict = "on the subject: not a cue" if f.get("on_subject") is True else (
            "confirmed" if f.get("confirmed") is True else "not confirmed")
    return {
        "cls": short(f.get("class") if f.get("class") not in (None, "") else "?", CLASS_WIDTH),
        "box": box_text(f.get("box"), f.get("input_size") or size),
        "control_box": box_text(f.get("control_box")),
        "evidence_share": metric_value(f.get("evidence_share")), "consistency": metric_value(f.get("consistency")),
        "off_subject": off, "off_subject_text": off_text,
        "removal": _arm(f, "removal"), "transplant": _arm(f, "transplant"),
        "p_value": metric_value(f.get("p_adjusted") if f.get("p_adjusted") is not None else f.get("p_value")),
        "verdict": short(verdict, 400),
        "groups": groups, "groups_more": more,
        "figure": figures.get(short(name)) if isinstance(name, str) else None,
    }


def _is_finding(f: Any) -> bool:
    return as_dict(f).get("confirmed") is True and as_dict(f).get("on_subject") is not True


def _overall_rows(overall: dict[str, Any]) -> list[dict[str, Any]]:
    """(label, metric for |metric, plain note) rows of the overall key/value table."""
    rows = []

    def add(label: str, key: str, note: str = "") -> None:
        if key in overall:
            m = overall[key]
            rows.append({"label": label, "metric": m if isinstance(m, dict) else {"value": m}, "note": note})

    add("Confirmed cues", "n_findings")
    add("Confirmed cues off the subject", "n_off_subject_findings")
    add("Share of evidence off the subject", "off_subject_share")
    add("Largest share of images with evidence in one cell", "max_consistency")
    deletion = as_dict(overall.get("deletion_score"))
    baseline = metric_value(deletion.get("random_baseline"))
    add("Deletion score", "deletion_score", "lower is better" + (
        f"; a random pixel order scores {fmt_num(baseline)}" if baseline is not None else ""))
    nc = as_dict(overall.get("not_converged"))
    n, of = _int(nc.get("n")), _int(nc.get("of"))
    add("Masks that did not converge", "not_converged", f"{n} of {of} images" if n is not None and of is not None else "")
    add("Images with masks", "n_images")
    return rows


def _summary(metrics: dict[str, Any], findings: Any, overall: dict[str, Any]) -> tuple[str, bool | None]:
    """The check's sentence, opened by "No cue was confirmed." when it found none; and whether it found none."""
    n = len(findings) if isinstance(findings, list) else _int(overall.get("n_findings"))
    none = None if n is None else n == 0
    text = metrics.get("summary")
    text = short(text, 600) if isinstance(text, str) and text.strip() else ""
    if none and "no cue was confirmed" not in text.lower():
        text = f"{NO_CUE} {text}".strip()
    elif not text and n:
        text = f"{n} cue{'s' if n != 1 else ''} confirmed."
    return text or "The check recorded no summary.", none


def spurious_view(check: dict[str, Any], figures: list[dict[str, str]]) -> dict[str, Any] | None:
    """What the template shows for a ``checks.spurious`` entry; None when it is not in the check's schema.

    ``figures``: the check's embeddable figures (`embeddable_figures`); a finding's own figure is shown
    next to it and left out of ``other_figures``, which the report shows after the check.
    """
    metrics = as_dict(as_dict(check).get("metrics"))
    if not any(k in metrics for k in SCHEMA_KEYS):
        return None
    params = as_dict(as_dict(check).get("params"))
    overall = as_dict(metrics.get("overall")) or metrics  # an early draft wrote the overall leaves at the top
    by_name = {f["name"]: f for f in figures}
    size = params.get("input_size")
    raw = metrics.get("findings")
    findings = [_region(f, size, by_name) for f in as_list(raw)[:MAX_FINDINGS]]
    others = [c for c in as_list(metrics.get("candidates")) if not _is_finding(c)]
    candidates = [_region(c, size, {}) for c in others[:MAX_CANDIDATES]]
    maps = as_dict(metrics.get("evidence_maps"))
    not_predicted = metrics.get("not_predicted")
    names = as_list(not_predicted) if isinstance(not_predicted, list) else [c for c, m in maps.items() if m is None]
    by_group, by_group_more = _group_rows(as_dict(check).get("by_group"), _share_row)
    summary, none = _summary(metrics, raw, overall)
    placed = {id(f["figure"]) for f in findings if f["figure"]}
    return {
        "summary": summary, "none_confirmed": none,
        "findings": findings, "findings_more": max(0, len(as_list(raw)) - MAX_FINDINGS),
        "candidates": candidates, "candidates_more": max(0, len(others) - MAX_CANDIDATES),
        "overall": _overall_rows(overall),
        "not_predicted": [short(c, CLASS_WIDTH) for c in names[:MAX_CLASSES]],
        "not_predicted_more": max(0, len(names) - MAX_CLASSES),
        "by_group": by_group, "by_group_more": by_group_more,
        "alpha": fmt_plain(params["alpha"]) if metric_value(params.get("alpha")) is not None else None,
        "other_figures": [f for f in figures if id(f) not in placed],
    }
