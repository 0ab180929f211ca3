"""Before/after comparison of two audits: the original model and its mitigated copy (``auditor mitigate``),
audited with the same probe, seed and policy.

`compare_results` turns the two ``results.json`` dicts into one JSON-serialisable comparison: a header (the
two models, the probe, seed, budget, policy, the mitigation method and its settings), the verdicts, the
accuracy cost as a headline, and rows for every metric either audit measured, grouped by section:

- ``policy``: the policy's clauses, matched by clause id (value, interval and result on each side);
- ``group_metrics``: overall accuracy and every ``{value, ci}`` leaf of each attribute (and intersection) scope;
- ``attacks``: clean/robust accuracy, attack success rate, the black-box attacks (Square, HopSkipJump,
  transfer) and whether the robustness measurement was reliable; per-attribute robust-accuracy gaps;
- ``spurious``: confirmed findings, off-subject findings, the off-subject share of the evidence;
- ``explanations``: faithful methods, methods failing the sanity check, per-attribute differences.

Each row holds ``before`` and ``after`` (``{"value", "ci"}``, value None shown as "n/a" when that side did
not measure it), ``change`` (after - before), ``higher_is_better`` and ``direction`` (improved / worsened /
unchanged; "changed" for a metric with no better direction; "n/a" when a side is missing) and
``significance``.

Significance rule. Two 95% intervals that merely fail to overlap are *not* what is claimed here, and
overlapping intervals do not prove "no change" either. A change is called **significant** only when
both intervals are present, the after value lies outside the before interval, AND the before value lies
outside the after interval. With both intervals present but that test failing it is "not significant";
with a value but an interval missing on either side it is "no interval" (nothing is claimed); with a
value missing it is "n/a". The audits are on the same probe, so the samples are paired and this is a
conservative screen, not a test: the report says "significant" only where each point estimate is
implausible under the other model's interval.

Gradient masking. When the white-box robust accuracy rises (by at least `MASKING_MIN_GAIN`, or
significantly) but a black-box or transfer attack's robust accuracy rises by less than half as much, or
the robustness measurement's own reliability drops (``reliable`` 1 -> 0, or more masking flags), the
comparison carries the flag "gradient masking suspected: the gain is not robustness". This is the
typical signature of defensive distillation: the gradients vanish, white-box attacks stall, and attacks
that do not use the model's gradients succeed as before.

Nothing here raises on odd results (missing keys, wrong types, NaN/inf, hostile strings): a metric that
cannot be read is missing. Strings from the data are kept (control characters replaced) and escaped by
each renderer: HTML through jinja2 autoescape, Markdown with `auditor.report._markdown.md`.

    >>> cmp = compare_results({}, {}, method="distillation")
    >>> cmp["accuracy"]["direction"]
    'n/a'

Each check's section (its title, rows and flags) comes from its presenter (`auditor.report.presenter`); a
check without one gets a row per numeric overall metric. Inside: ``_rows`` (the policy rows and the
checks' sections), ``_model`` (the comparison: header, flags, accuracy cost, summary), ``_render`` (HTML,
Markdown, the files). Reading odd values and the row primitives are in the report layer
(``auditor.report._values``, ``auditor.report._rows``).
"""
from __future__ import annotations

from auditor.compare._model import MASKING_FLAG, MASKING_MIN_GAIN, compare_results
from auditor.compare._render import (
    COMPARE_FILES,
    render_comparison_html,
    render_comparison_markdown,
    write_comparison,
)
from auditor.report import higher_is_better, significance

__all__ = [
    "COMPARE_FILES",
    "MASKING_FLAG",
    "MASKING_MIN_GAIN",
    "compare_results",
    "higher_is_better",
    "render_comparison_html",
    "render_comparison_markdown",
    "significance",
    "write_comparison",
]
