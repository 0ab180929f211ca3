"""The built-in presenters, one module per check (`auditor.report.presenter`): each turns its check's part
of ``results.json`` into what every output shows of it (the report section's view and macro, Markdown,
JUnit headline, comparison rows, methodology, page-1 findings), never raising on odd input. Importing this
package registers them.

- `group_metrics`: per-group rates, disparities, intersections (bars and heatmaps), the largest gaps.
- `spurious`: the cues the model may rely on, with their evidence and figures.
- `attacks`: robust accuracy under attack, its curves and the gradient-masking verdict.
- `explanations`: attribution faithfulness, sanity and model views.

Their longer prose (methodology, page-1 sentences) is in the private ``_<check>_text`` modules.
"""
from __future__ import annotations

from auditor.report.sections.attacks import UNTRUSTED, AttacksPresenter, attacks_view
from auditor.report.sections.explanations import ExplanationsPresenter, explanations_view
from auditor.report.sections.group_metrics import GroupMetricsPresenter, group_metrics_view
from auditor.report.sections.spurious import SpuriousPresenter, spurious_view

__all__ = [
    "UNTRUSTED",
    "AttacksPresenter",
    "ExplanationsPresenter",
    "GroupMetricsPresenter",
    "SpuriousPresenter",
    "attacks_view",
    "explanations_view",
    "group_metrics_view",
    "spurious_view",
]
