"""Explanations that are tested, not just drawn (`auditor.explain`).

For a seeded sample of the probe: attribution maps by Integrated Gradients, Saliency, SmoothGrad,
Grad-CAM and Occlusion (captum), and the meaningful-perturbation masks of the spurious check. Each is
scored by deletion and insertion curves against a random ranking of the pixels (faithfulness), and each
map method is recomputed as the model's weights are randomised layer by layer from the top (sanity). Per
gender, age and race: faithfulness and the share of attribution on the subject, compared with intervals.
And two views of the model itself: its first-layer filters, and one image per class found by gradient
ascent on the input.

This module is the check (its parameters, plan and run); the scoring is in `_explanation_scores`, the
comparison of groups in `_explanation_groups`, and the model views, figures and summary in
`_explanation_views`.
"""
from __future__ import annotations

import logging
import time
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.checks._explanation_groups import (
    ALPHA, GROUP_METRICS, N_PERM, NO_BOXES, by_group, compared_groups, findings, group_sample, scope_differences as _scope,
)
from auditor.checks._explanation_groups import finding as _finding  # noqa: F401  (the name the tests use)
from auditor.checks._explanation_scores import (
    CHECK, NO_CASCADE, area, count, faithfulness_curves, faithfulness_entry, mean, overall, passes,
    perturbation_masks, reference, sanity_cascade, subject_share,
)
from auditor.checks._explanation_views import draw_figures, model_views, summary
from auditor.checks.base import Check, CheckContext, CheckResult, Param, PassPlan, PlanContext
from auditor.checks.registry import register_check
from auditor.errors import UsageError
from auditor.explain import LABELS, METHODS
from auditor.spurious import OPERATORS

if TYPE_CHECKING:
    from auditor.explain import attributions as attr

__all__ = ["Explanations", "ALL_METHODS"]

log = logging.getLogger(__name__)

ALL_METHODS = (*METHODS, "perturbation_mask")


def parse_methods(text: str) -> list[str]:
    """``"all"`` or a comma-separated subset of `ALL_METHODS`, in the canonical order."""
    asked = [t.strip() for t in str(text).split(",") if t.strip()]
    if asked == ["all"]:
        return list(ALL_METHODS)
    unknown = [m for m in asked if m not in ALL_METHODS]
    if not asked or unknown:
        raise UsageError(f"The 'methods' parameter of explanations must be 'all' or a comma-separated list of "
                         f"{', '.join(ALL_METHODS)}. Got {text!r} instead.")
    return [m for m in ALL_METHODS if m in asked]


@register_check
class Explanations(Check):
    """Attributions checked for faithfulness and sanity, per group; first-layer filters and class models."""

    name = CHECK
    description = ("Integrated Gradients, Saliency, SmoothGrad, Grad-CAM, Occlusion and meaningful-perturbation masks: "
                   "deletion/insertion faithfulness against a random baseline, the weight-randomisation sanity check, "
                   "per-group comparison with intervals, first-layer filters and class-model images.")
    order = 40
    params = {
        "n_images": Param(int, 0, "images every method explains", low=0, high=100_000, budget=(32, 64, 512)),
        "n_group_images": Param(int, 0, "images the groups are compared on, with the reference method only (at least "
                                "n_images)", low=0, high=1_000_000, budget=(64, 256, 1536)),
        "n_sanity": Param(int, 0, "images for the randomisation sanity check", low=0, high=10_000, budget=(8, 12, 64)),
        "methods": Param(str, "all", f"'all' or a comma-separated subset of {', '.join(ALL_METHODS)}"),
        "layer": Param(str, "", "the layer Grad-CAM explains, by module name: a convolution, or a vision transformer's "
                       "layer whose output is a grid of tokens (empty: the last convolutional layer)"),
        "ig_steps": Param(int, 0, "Integrated Gradients path steps", low=0, high=10_000, budget=(16, 24, 64)),
        "nt_samples": Param(int, 0, "SmoothGrad noisy samples per image", low=0, high=10_000, budget=(8, 12, 32)),
        "nt_stdev": Param(float, 0.15, "SmoothGrad noise level, in [0, 1] pixel units", low=0.0, high=1.0),
        "occlusion_window": Param(int, 0, "occlusion patch side in pixels (0: an eighth of the image side)", low=0, high=4096),
        "occlusion_stride": Param(int, 0, "occlusion patch stride in pixels (0: by --budget: the patch side at quick and "
                                  "standard, half of it at thorough)", low=0, high=4096),
        "curve_steps": Param(int, 0, "steps of the deletion and insertion curves", low=0, high=1000, budget=(10, 10, 32)),
        "operator": Param(str, "fill", "how deleted pixels are removed (as in the spurious check)", choices=OPERATORS),
        "sanity_stages": Param(int, 0, "stages of the randomisation cascade", low=0, high=1000, budget=(3, 4, 8)),
        "sanity_threshold": Param(float, 0.5, "a method whose maps keep at least this rank correlation with the fully "
                                  "randomised model's fails the sanity check", low=0.0, high=1.0),
        "mask_steps": Param(int, 0, "optimisation steps of the perturbation masks", low=0, high=5000, budget=(20, 30, 100)),
        "class_model_steps": Param(int, 0, "gradient-ascent steps per class-model image; class models are drawn for at "
                                   "most 20 classes", low=0, high=10_000, budget=(32, 48, 200)),
        "min_group_size": Param(int, 30, "groups smaller than this are flagged insufficient and left out of the differences", low=1),
        "min_difference": Param(float, 0.10, "a difference between groups at least this large, with a Holm-adjusted "
                                "permutation p-value below 0.05, is a finding", low=0.0, high=1.0),
        "figures": Param(bool, True, "draw the attribution, sanity, filter and class-model figures"),
    }
    internal_sizes = {"occlusion_overlap": (1, 1, 2)}
    """Occlusion patches per window side (1: side by side, 2: half-overlapping)."""
    metric_names = tuple(GROUP_METRICS.values())
    overall_metric_names = ("n_images", "faithful_methods", "methods_failing_sanity", "best_deletion_auc",
                            "first_layer_smoothness")

    def _settings(self, size: dict[str, int], hw: tuple[int, int], batch_size: int, seed: int) -> attr.Settings:
        from auditor.explain import attributions as attr  # imported when run: keeps `auditor checks` fast

        cfg = self.config
        window = cfg["occlusion_window"] or max(1, min(hw) // 8)
        return attr.Settings(ig_steps=size["ig_steps"], nt_samples=size["nt_samples"], nt_stdev=cfg["nt_stdev"],
                             occlusion_window=window,
                             occlusion_stride=cfg["occlusion_stride"] or max(1, window // size["occlusion_overlap"]),
                             batch_size=batch_size, seed=seed)

    def plan(self, ctx: PlanContext | CheckContext) -> PassPlan:
        """Every method on ``n_images``, the curves, the sanity cascade, the class models, and the group
        sample explained by the reference method, which the results choose: planned as the costliest of
        the map methods (the perturbation masks, never checked for sanity, are seldom chosen)."""
        from auditor.explain import sanity  # imported when run: keeps `auditor checks` fast

        size, methods = self.at_budget(ctx.budget), parse_methods(self.config["methods"])
        hw = (int(ctx.input_size[0]), int(ctx.input_size[1]))
        s = self._settings(size, hw, ctx.batch_size, 0)
        n = min(size["n_images"], ctx.n_rows)
        cost = {m: passes(m, 1, s, hw, size["mask_steps"]) for m in methods}
        total = PassPlan(*map(sum, zip(*(passes(m, n, s, hw, size["mask_steps"]) for m in methods))))
        curves = 2 * (n * (size["curve_steps"] + 1) + 1)
        total += PassPlan((1 + len(methods)) * curves)
        mapped = [m for m in methods if m in METHODS]
        k = min(size["n_sanity"], n)
        n_stages = (len(sanity.cascade_stages(ctx.model.module, size["sanity_stages"])) if ctx.model is not None
                    else size["sanity_stages"])
        for m in mapped:
            f, b = passes(m, k, s, hw, size["mask_steps"])
            total += PassPlan(n_stages * f, n_stages * b)
        m_rows = min(size["n_group_images"], ctx.n_rows)
        extra = min(size["n_group_images"] - n, m_rows - round(m_rows * n / max(1, ctx.n_rows)))
        if extra > 0 and methods:
            ref = max(mapped or methods, key=lambda m: sum(cost[m]))
            f, b = passes(ref, extra, s, hw, size["mask_steps"])
            total += PassPlan(f + 2 * (extra * (size["curve_steps"] + 1) + 1), b)
        c = min(20, ctx.n_classes)
        total += PassPlan(c * (size["class_model_steps"] + 1), c * size["class_model_steps"])
        return PassPlan(total.forward, total.backward, "the group sample's method is chosen by the results: "
                        "planned as the costliest map method")

    def run(self, ctx: CheckContext) -> CheckResult:
        import torch  # imported when run: keeps `auditor checks` fast
        from auditor.checks.sampling import group_balanced_rows, group_labels, load_rows, subject_masks
        from auditor.explain import attributions as attr
        from auditor.frozen import frozen

        start = time.perf_counter()
        cfg = self.config
        size = self.at_budget(ctx.budget)
        methods = parse_methods(cfg["methods"])
        pred = ctx.predictions
        rows = group_balanced_rows(group_labels(ctx), len(pred), size["n_images"], ctx.seed, "explanations")
        images, rows = load_rows(ctx, rows)
        n, _, h, w = images.shape
        settings = self._settings(size, (h, w), ctx.batch_size, ctx.seed)
        result = CheckResult(params={**cfg, **size, "methods": methods, "n_images": int(n), "input_size": [h, w],
                                     "occlusion_window": settings.occlusion_window,
                                     "occlusion_stride": settings.occlusion_stride, "layer": None})
        model = ctx.model.module
        x = images.to(ctx.device)
        targets = torch.as_tensor(pred.y_pred[rows], dtype=torch.long, device=ctx.device)
        rng = np.random.default_rng([ctx.seed, zlib.crc32(b"explanations-boot")])
        notes: list[str] = []
        entries: dict[str, dict[str, Any]] = {}
        maps: dict[str, np.ndarray] = {}
        layer = None
        with frozen(model):
            if "grad_cam" in methods:
                layer = attr.find_conv_layer(model, cfg["layer"] or None, x[:1])
                result.params["layer"] = layer.name
            for i, method in enumerate(methods):  # each method a part of the check, done when the next one starts
                if i:
                    ctx.report(f"{self.name}: {methods[i - 1]}", 1, 1)
                ctx.report(f"{self.name}: {method}", 0, 1)
                try:
                    if method == "perturbation_mask":
                        maps[method] = perturbation_masks(ctx, model, x, targets, size, cfg["operator"], result)
                    else:
                        maps[method] = attr.attribute(model, method, x, targets, settings, layer=layer).numpy()
                        count(result, method, n, settings, (h, w))
                except attr.MethodUnavailable as exc:
                    entries[method] = _not_run(method, str(exc))
                    notes.append(f"{LABELS[method]} was not run: {_strip(str(exc))}")
                    continue
                except (RuntimeError, ValueError, TypeError) as exc:  # a model captum cannot drive: keep the others
                    log.warning("explanations: %s failed: %s", method, exc)
                    why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                    entries[method] = _not_run(method, why)
                    notes.append(f"{LABELS[method]} failed on this model ({why})")
                    continue
                entries[method] = {"status": "ok", "reason": None, "label": LABELS[method]}
            if methods:
                ctx.report(f"{self.name}: {methods[-1]}", 1, 1)
            curves = faithfulness_curves(ctx, model, x, targets, maps, size["curve_steps"], cfg["operator"], result)
            subjects = subject_masks(ctx, pred.index[rows], (h, w))
            has_subjects = bool(np.isfinite(subjects).all(axis=(1, 2)).any())
            per_image: dict[str, dict[str, np.ndarray]] = {}
            for method, m in maps.items():
                d, ins = curves[method]
                per_image[method] = {"deletion_auc": area(d), "insertion_auc": area(ins),
                                     "subject_share": subject_share(m, subjects)}
                entries[method].update(faithfulness_entry(d, ins, curves["random"], rng))
                entries[method]["subject_share"] = mean(per_image[method]["subject_share"], rng, NO_BOXES)
            sane, cascade_maps = sanity_cascade(ctx, model, x, targets, maps, settings, layer, size, cfg["sanity_threshold"],
                                                result)
            for method in maps:
                entries[method]["sanity"] = sane.get(method, {"status": "not_run", "reason": NO_CASCADE.get(method, "")})
            order = [m for m in methods if m in entries]
            metrics = overall(entries, order, curves, n, size["curve_steps"], rng)
            ref = reference(entries)
            compared, compared_rows = per_image.get(ref), rows
            if ref is not None and size["n_group_images"] > n:
                ctx.report(f"{self.name}: groups", 0, 1)
                compared, compared_rows = group_sample(ctx, model, rows, ref, per_image[ref], settings, layer, size,
                                                       cfg["operator"], result)
                ctx.report(f"{self.name}: groups", 1, 1)
        table = ctx.probe.table
        attributes = [a for a in ctx.attributes if a in table]
        result.by_group = by_group({a: table.loc[pred.index[rows], a].to_numpy(dtype=object) for a in attributes},
                                   per_image, cfg["min_group_size"], rng)
        result.params["n_group_images"] = int(len(compared_rows))
        result.params["n_perm"], result.params["alpha"] = N_PERM, ALPHA  # the group differences' test
        for attribute in attributes:
            labels = table.loc[pred.index[compared_rows], attribute].to_numpy(dtype=object)
            scope = _scope(labels, compared, ref, cfg["min_group_size"], has_subjects, rng)
            if compared is not None and ref is not None:
                compared_groups(result.by_group[attribute], labels, compared, ref, cfg["min_group_size"], rng)
            result.metrics[attribute] = scope
        found = findings(result.metrics, attributes, cfg["min_difference"])
        ctx.report(f"{self.name}: model views", 0, 1)
        view_metrics, views = model_views(ctx, model, size, cfg["figures"], result, notes)
        ctx.report(f"{self.name}: model views", 1, 1)
        metrics.update(view_metrics)
        if not has_subjects:
            notes.append(NO_BOXES[0].upper() + NO_BOXES[1:] + ".")
        metrics["methods"] = {m: entries[m] for m in order}
        metrics["reference_method"] = ref
        metrics["findings"] = found
        metrics["notes"] = notes
        metrics["summary"] = summary(entries, order, found, metrics, cfg["sanity_threshold"])
        result.metrics = {"overall": metrics, **{k: v for k, v in result.metrics.items() if k != "overall"}}
        if cfg["figures"]:
            draw_figures(ctx, images, maps, order, targets, rows, views, cascade_maps, result)
        result.seconds = time.perf_counter() - start
        return result


def _not_run(method: str, reason: str) -> dict[str, Any]:
    return {"status": "not_run", "reason": _strip(reason), "label": LABELS[method]}


def _strip(text: str) -> str:
    return text.removeprefix("Grad-CAM was not run: ")
