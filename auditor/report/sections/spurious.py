"""The spurious part of the report: confirmed cues, their per-group flip rates, the overall evidence
metrics, the unconfirmed candidates and the off-subject share by group, as plain values.

The same view feeds the HTML/PDF report and the Markdown summary (the ``*_text`` fields are plain text
made only of our own number formatting). A ``checks.spurious`` entry that is not in the check's
schema (none of ``overall``, ``summary``, ``candidates``, ``not_predicted`` in its metrics) gives None,
and the report falls back to the generic tree, so nothing recorded is hidden.
"""
from __future__ import annotations

from typing import Any

from auditor.report._format import NA, as_dict, as_list, dig, fmt_num, fmt_p, fmt_plain, metric_value, short
from auditor.report._markdown import md, md_rows
from auditor.report._method import OPERATORS, count_or, pct
from auditor.report._rows import add_row, metric_row, row_label
from auditor.report.presenter import Presenter, ran, register_presenter

__all__ = ["SpuriousPresenter", "box_text", "spurious_view"]

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


def _markdown(check: dict[str, Any]) -> list[str]:
    sp = spurious_view(check, []) if ran(check) else None
    if sp is None:
        return []
    out = ["### Spurious cues", "", f"{md(sp['summary'], 600)}", ""]
    for f in sp["findings"]:  # at most MAX_FINDINGS
        out.append(f"- **{md(f['cls'], 60)}**: region {f['box']}, off-subject share {f['off_subject_text']}, "
                   f"removal flip {f['removal']['text']}, transplant flip {f['transplant']['text']}, "
                   f"p {fmt_p(f['p_value'])}")
    return md_rows(out, sp["findings_more"], "confirmed cues in the full report") if sp["findings"] else out


def _methodology(params: dict[str, Any]) -> list[dict[str, str]]:
    """(title, text) paragraphs for the spurious check, read from its parameters."""
    grid = params.get("grid")
    g = f"{grid}×{grid}" if isinstance(grid, int) and not isinstance(grid, bool) else "coarse"
    op = str(params.get("operator") or "")
    how = OPERATORS.get(op, f"perturbed by the “{short(op, 40)}” operator" if op else "replaced by the run's perturbation")
    lr = f" (Adam, learning rate {fmt_plain(params['lr'])})" if isinstance(params.get("lr"), (int, float)) else ""
    keep = params.get("game") == "preservation"
    game = ("the preservation game looks for the smallest region that alone keeps the predicted class's score." if keep
            else "the deletion game looks for the smallest region whose removal destroys the predicted class's score.")
    margin = params.get("min_margin")
    margin = (f"{margin * 100:g} percentage points" if isinstance(margin, (int, float)) and not isinstance(margin, bool)
              else "the configured margin")
    rate = params.get("min_flip_rate")
    rate = pct(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else "the configured share"
    alpha = fmt_plain(params["alpha"]) if isinstance(params.get("alpha"), (int, float)) else "alpha"
    factor = fmt_plain(params.get("candidate_factor")) if isinstance(params.get("candidate_factor"), (int, float)) else "the configured"
    cons, limit = params.get("candidate_min_consistency"), params.get("candidates_per_class")
    return [
        {"title": "Evidence masks", "text": (
            f"For {count_or(params.get('n_images'))} audited images, sampled evenly over the predicted classes, a mask is "
            f"learned by gradient descent{lr} in {count_or(params.get('steps'), 'the configured number of')} steps (both "
            f"scale with --budget unless set): {game} The mask is learned at low resolution and upsampled smoothly; an area term "
            "keeps it small and a total-variation term keeps it in one piece; the image is jittered by a few pixels "
            f"at each step so the mask cannot rely on pixel-exact (adversarial) patterns. Masked pixels are {how}.")},
        {"title": "Where the evidence lies", "text": (
            f"Each image's evidence (the region its mask {'keeps' if keep else 'removes'}) is summed on a {g} grid of the input and scaled to "
            "sum to 1; a class's evidence map is the mean over the images predicted as that class. A candidate cue is a "
            f"group of neighbouring cells holding at least {factor} times a uniform share of the class's mean evidence in which "
            f"at least {pct(cons) if isinstance(cons, float) else 'the configured share'} of the images put at least twice a "
            f"uniform share (a cue need not be in every image); the {count_or(limit, 'few')} largest per class are tested. With subject boxes in the probe, the off-subject share is the "
            "part of the evidence that lies outside the subject's box (or mask).")},
        {"title": "Confirmation", "text": (
            "Each candidate is tested by intervention. The region is removed (filled with the mean colour of a ring "
            "around it) from the images predicted as its class whose own evidence lies there, and transplanted into images predicted "
            "as other classes; the same is done with a control box of the same size where the mean evidence is lowest. "
            f"A cue is confirmed when its removal or its transplant flips at least {rate} of the predictions, at least "
            f"{margin} more than the control does, and the exact one-sided McNemar test of cue flips against control "
            f"flips on the same images (both arms pooled), Holm-adjusted across all tested regions, has p < {alpha}. A confirmed candidate that lies mostly on the "
            "subject (less than half of its evidence off the subject box) is the model using the subject, not a "
            "finding; that can only be known when the probe has subject boxes.")},
        {"title": "Deletion score", "text": (
            "How well the masks explain the predictions: the area under the predicted class's probability as pixels "
            "are removed, most evident first. Lower is better; it is compared with the same area for a random order "
            "of the pixels.")},
        {"title": "Masks that did not converge", "text": (
            "A mask has not converged when removing its region leaves the class probability above the larger of "
            "half its original value and chance. The area term stops a mask from growing beyond a small region, so "
            "a high share means the model's evidence for those images is spread out: no small region alone decides "
            "the prediction. Those masks still count in the evidence maps; a cue is only reported after its own test.")},
    ]


def _limitations(check: dict[str, Any]) -> list[str]:
    n = as_dict(check.get("params")).get("n_images")
    out = ["Spurious cues: only the regions the masks highlight are tested, so a cue the masks never highlight is not "
           "found; a probe without subject boxes cannot tell a cue on the subject from one off it." +
           (f" The masks were learned for a sample of {count_or(n)} images." if isinstance(n, int) else "")]
    if dig(check, "metrics", "overall", "off_subject_share", "reason"):
        out.append("This probe has no subject boxes: the spurious check could not say whether its evidence lies on the "
                   "subject or off it.")
    return out


def _n_findings(metrics: dict[str, Any]) -> Any:
    n = dig(metrics, "overall", "n_findings")
    if n is None and isinstance(metrics.get("findings"), list):  # older schema: the findings list only
        return {"value": len(metrics["findings"]), "ci": None}
    return n


@register_presenter
class SpuriousPresenter(Presenter):
    """Spurious cues: the regions the model relies on that are not the subject, confirmed by intervention."""

    name = "spurious"
    title = "Spurious cues"
    order = 20
    compare_order = 30
    template_name = "report_macros.html.j2"
    macro = "spurious"
    method_title = "How spurious cues are found"
    labels = {"n_findings": "Confirmed spurious cues", "n_off_subject_findings": "Off-subject cues",
              "off_subject_share": "Evidence share off the subject"}
    directions = {"n_findings": False, "n_off_subject_findings": False, "off_subject_share": False,
                  "deletion_auc": False, "not_converged": False}

    def view(self, check: dict[str, Any], figures: list[dict[str, str]]) -> dict[str, Any] | None:
        return spurious_view(check, figures)

    def figures_left(self, view: dict[str, Any], figures: list[dict[str, str]]) -> list[dict[str, str]]:
        return view["other_figures"]  # its findings' own figures are shown next to them

    def markdown(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        return _markdown(check)

    def junit(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        sp = spurious_view(check, []) if ran(check) else None
        if sp is None:
            return []
        n = metric_value(_n_findings(as_dict(check.get("metrics"))))
        return [sp["summary"]] + ([f"confirmed cues: {n:g}"] if n is not None else [])

    def methodology(self, check: dict[str, Any], results: dict[str, Any]) -> list[dict[str, str]]:
        return _methodology(as_dict(check.get("params")))

    def limitations(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        return _limitations(check)

    def compare_rows(self, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        mb, ma = as_dict(before.get("metrics")), as_dict(after.get("metrics"))
        ob, oa = as_dict(mb.get("overall")), as_dict(ma.get("overall"))
        rows: list[dict[str, Any]] = []
        add_row(rows, metric_row(self.name, f"{self.name}.overall.n_findings", row_label("n_findings"), _n_findings(mb),
                                 _n_findings(ma), False, key_metric=True, scope="overall", metric="n_findings"))
        for key in ("n_off_subject_findings", "off_subject_share"):
            add_row(rows, metric_row(self.name, f"{self.name}.overall.{key}", row_label(key), ob.get(key), oa.get(key), False,
                                     key_metric=key == "off_subject_share", scope="overall", metric=key))
        return rows
