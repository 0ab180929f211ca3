"""What the explanations check shows: the two views of the model itself (first-layer filters and
class-model images), the figures, and the summary line."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.checks import bootstrap as boot
from auditor.checks.base import CheckContext, CheckResult
from auditor.explain import LABELS
from auditor.results import metric, no_metric

if TYPE_CHECKING:
    import torch

__all__ = ["N_FIGURE_ROWS", "class_name", "model_views", "draw_figures", "summary"]

log = logging.getLogger("auditor.checks.explanations")
N_FIGURE_ROWS = 4


def class_name(ctx: CheckContext, k: int) -> str:
    """The class's name, or its index where the model has more outputs than names."""
    return str(ctx.classes[k]) if 0 <= k < len(ctx.classes) else str(k)


def model_views(ctx: CheckContext, model: Any, size: dict[str, int], figures: bool, result: CheckResult,
                notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """First-layer filters and class-model images: their numbers for the metrics, and the views themselves
    for `draw_figures`."""
    from auditor.explain import attributions as attr  # imported when run: keeps `auditor checks` fast
    from auditor.explain.model_views import class_model_images, first_layer_filters

    out: dict[str, Any] = {}
    view = first_layer_filters(model)
    views: dict[str, Any] = {"filters": view, "class_models": None}
    if view is None:
        out["first_layer"] = None
        out["first_layer_smoothness"] = no_metric("the model has no convolutional first layer on the colour channels")
        notes.append("First-layer filters were not drawn: the model has no convolution on the colour channels.")
    else:
        out["first_layer"] = {"layer": view.layer, "n_filters": view.n_filters, "kernel": list(view.kernel),
                              "in_channels": view.in_channels, "smoothness": boot.rounded(view.smoothness),
                              "noisy": bool(view.noisy), "verdict": view.verdict,
                              "figure": "first_layer_filters" if figures else None}
        out["first_layer_smoothness"] = metric(boot.rounded(view.smoothness),
                                               reason=None if view.smoothness is not None else view.verdict)
    classes = list(range(min(20, len(ctx.classes))))
    try:
        cm = class_model_images(model, len(ctx.classes), tuple(ctx.input_size), classes=classes,
                                steps=size["class_model_steps"], seed=ctx.seed, device=ctx.device)
    except (RuntimeError, ValueError, attr.MethodUnavailable) as exc:
        out["class_models"] = None
        notes.append(f"Class models were not drawn: {str(exc).splitlines()[0][:300]}")
        return out, views
    views["class_models"] = cm
    result.count(cm)
    out["class_models"] = {"classes": [class_name(ctx, c) for c in cm.classes], "steps": size["class_model_steps"],
                           "final_probability": boot.rounded_list(np.asarray(cm.final_probability)),
                           "figure": "class_models" if figures else None}
    return out, views


def draw_figures(ctx: CheckContext, images: torch.Tensor, maps: dict[str, np.ndarray], order: list[str],
                 targets: torch.Tensor, rows: np.ndarray, views: dict[str, Any],
                 cascade_maps: list[tuple[str, dict[str, np.ndarray]]], result: CheckResult) -> None:
    """The attribution grid, the sanity cascade, the first-layer filters and the class models, into
    ``result.figures`` (none when matplotlib is missing: the tables carry the numbers)."""
    try:
        from auditor.explain import figures as fig
    except ImportError as exc:  # matplotlib missing: the tables carry the numbers
        log.warning("explanations figures skipped: %s", exc)
        return
    shown = [m for m in order if m in maps]
    k = min(N_FIGURE_ROWS, images.shape[0])
    titles = [f"#{int(ctx.predictions.index[r])}: {class_name(ctx, int(t))}" for r, t in zip(rows[:k], targets[:k].tolist())]
    if shown:
        result.figures["attributions"] = fig.attribution_grid(images[:k], {m: maps[m][:k] for m in shown},
                                                              {m: LABELS[m] for m in shown}, titles)
    if cascade_maps:
        checked = [m for m in shown if m in cascade_maps[0][1]]
        stages = {LABELS[m]: [maps[m][0], *(c[m] for _, c in cascade_maps)] for m in checked}
        result.figures["sanity_cascade"] = fig.sanity_grid(images[0], stages, ["original", *(t for t, _ in cascade_maps)],
                                                           {LABELS[m]: LABELS[m] for m in checked})
    if views["filters"] is not None:
        result.figures["first_layer_filters"] = fig.filter_grid(views["filters"])
    if views["class_models"] is not None:
        result.figures["class_models"] = fig.class_model_grid(views["class_models"], ctx.classes)


def summary(entries: dict[str, dict[str, Any]], order: list[str], findings: list[dict[str, Any]],
            overall: dict[str, Any], threshold: float) -> str:
    """The check's summary line: faithful methods, the sanity check, group differences, first-layer filters."""
    ran = [m for m in order if entries[m]["status"] == "ok"]
    if not ran:
        return "No attribution method could run on this model; see the notes."
    faithful = overall["faithful_methods"]["names"]
    failing = overall["methods_failing_sanity"]["names"]
    label = lambda ms: ", ".join(LABELS[m] for m in ms)  # noqa: E731
    parts = [f"{len(faithful)} of {len(ran)} methods beat a random ranking of the pixels on deletion"
             + (f" ({label(faithful)})." if faithful else ".")]
    if failing:
        parts.append(f"{label(failing)} failed the sanity check: the maps hardly change when the weights are randomised "
                     f"(rank correlation at least {threshold:g}), so they do not explain this model.")
    elif overall["methods_failing_sanity"]["of"]:
        parts.append("Every method checked changed its maps when the weights were randomised.")
    if findings:
        parts.append(f"{len(findings)} group difference(s) in the evidence the model uses: "
                     + "; ".join(f"{f['attribute']} ({f['metric'].replace('_difference', '').replace('_', ' ')})"
                                 for f in findings) + ".")
    else:
        parts.append("No group difference in faithfulness or subject share reached the finding level.")
    fl = overall.get("first_layer")
    if isinstance(fl, dict) and fl.get("noisy") and min(fl["kernel"]) > 3:  # 3x3 filters stay close to their start
        parts.append("The first-layer filters look like noise: the model may be undertrained or broken.")
    return " ".join(parts)
