"""One module per check's section of the report: each turns that check's part of ``results.json`` into
the plain values its template macro and the Markdown summary show (``*_view``), never raising on odd input.

- `group_metrics`: per-group rates, disparities, intersections (bars and heatmaps).
- `spurious`: the cues the model may rely on, with their evidence and figures.
- `attacks`: robust accuracy under attack, its curves and the gradient-masking verdict.
- `explanations`: attribution faithfulness, sanity and model views.
"""
from __future__ import annotations

from auditor.report.sections.attacks import UNTRUSTED, attacks_view
from auditor.report.sections.explanations import explanations_view
from auditor.report.sections.group_metrics import group_metrics_view
from auditor.report.sections.spurious import spurious_view

__all__ = ["UNTRUSTED", "attacks_view", "explanations_view", "group_metrics_view", "spurious_view"]
