"""Explanations that are tested, not just drawn (`auditor.explain`).

For a seeded sample of the probe: attribution maps by Integrated Gradients, Saliency, SmoothGrad,
Grad-CAM and Occlusion (captum), and the meaningful-perturbation masks of the spurious check. Each is
scored by deletion and insertion curves against a random ranking of the pixels (faithfulness), and each
map method is recomputed as the model's weights are randomised layer by layer from the top (sanity). Per
gender, age and race: faithfulness and the share of attribution on the subject, compared with intervals.
And two views of the model itself: its first-layer filters, and one image per class found by gradient
ascent on the input.
"""
from __future__ import annotations

import logging
import time
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.checks import bootstrap as boot
from auditor.checks.base import Check, CheckContext, CheckResult, Param, PassPlan, PlanContext
from auditor.checks.registry import register_check
from auditor.checks.significance import adjust_pvalues, permutation_pvalue
from auditor.errors import UsageError
from auditor.explain import LABELS, METHODS
from auditor.spurious import OPERATORS

if TYPE_CHECKING:
    import torch

    from auditor.explain import attributions as attr

__all__ = ["Explanations", "ALL_METHODS"]

log = logging.getLogger(__name__)

ALL_METHODS = (*METHODS, "perturbation_mask")
N_BOOT = 1000
N_PERM = 1000
LEVEL = 0.95
ALPHA = 0.05  # level of the permutation test of a group difference, Holm-adjusted over all the differences
N_FIGURE_ROWS = 4
NO_BOXES = "the probe has no subject boxes or masks, so attribution on the subject cannot be measured"
GROUP_METRICS = {"deletion_auc": "deletion_auc_difference", "insertion_auc": "insertion_auc_difference",
                 "subject_share": "subject_share_difference"}


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

    name = "explanations"
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
        cost = {m: _passes(m, 1, s, hw, size["mask_steps"]) for m in methods}
        total = PassPlan(*map(sum, zip(*(_passes(m, n, s, hw, size["mask_steps"]) for m in methods))))
        curves = 2 * (n * (size["curve_steps"] + 1) + 1)
        total += PassPlan((1 + len(methods)) * curves)
        mapped = [m for m in methods if m in METHODS]
        k = min(size["n_sanity"], n)
        n_stages = (len(sanity.cascade_stages(ctx.model.module, size["sanity_stages"])) if ctx.model is not None
                    else size["sanity_stages"])
        for m in mapped:
            f, b = _passes(m, k, s, hw, size["mask_steps"])
            total += PassPlan(n_stages * f, n_stages * b)
        m_rows = min(size["n_group_images"], ctx.n_rows)
        extra = min(size["n_group_images"] - n, m_rows - round(m_rows * n / max(1, ctx.n_rows)))
        if extra > 0 and methods:
            ref = max(mapped or methods, key=lambda m: sum(cost[m]))
            f, b = _passes(ref, extra, s, hw, size["mask_steps"])
            total += PassPlan(f + 2 * (extra * (size["curve_steps"] + 1) + 1), b)
        c = min(20, ctx.n_classes)
        total += PassPlan(c * (size["class_model_steps"] + 1), c * size["class_model_steps"])
        return PassPlan(total.forward, total.backward, "the group sample's method is chosen by the results: "
                        "planned as the costliest map method")

    def run(self, ctx: CheckContext) -> CheckResult:
        import torch  # imported when run: keeps `auditor checks` fast
        from auditor.checks.sampling import load_rows, random_rows, subject_masks
        from auditor.explain import attributions as attr
        from auditor.frozen import frozen

        start = time.perf_counter()
        cfg = self.config
        size = self.at_budget(ctx.budget)
        methods = parse_methods(cfg["methods"])
        pred = ctx.predictions
        rows = random_rows(len(pred), size["n_images"], ctx.seed, "explanations")
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
                        maps[method] = self._masks(ctx, model, x, targets, size, result)
                    else:
                        maps[method] = attr.attribute(model, method, x, targets, settings, layer=layer).numpy()
                        _count(result, method, n, settings, (h, w))
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
            curves = self._faithfulness(ctx, model, x, targets, maps, size["curve_steps"], result)
            subjects = subject_masks(ctx, pred.index[rows], (h, w))
            has_subjects = bool(np.isfinite(subjects).all(axis=(1, 2)).any())
            per_image: dict[str, dict[str, np.ndarray]] = {}
            for method, m in maps.items():
                d, ins = curves[method]
                per_image[method] = {"deletion_auc": _area(d), "insertion_auc": _area(ins),
                                     "subject_share": _subject_share(m, subjects)}
                entries[method].update(_faithfulness_entry(d, ins, curves["random"], rng))
                entries[method]["subject_share"] = _mean(per_image[method]["subject_share"], rng, NO_BOXES)
            sane, cascade_maps = self._sanity(ctx, model, x, targets, maps, settings, layer, size, cfg["sanity_threshold"],
                                              result)
            for method in maps:
                entries[method]["sanity"] = sane.get(method, {"status": "not_run", "reason": _NO_CASCADE.get(method, "")})
            order = [m for m in methods if m in entries]
            overall = self._overall(entries, order, curves, n, size["curve_steps"], rng)
            reference = _reference(entries)
            compared, compared_rows = per_image.get(reference), rows
            if reference is not None and size["n_group_images"] > n:
                ctx.report(f"{self.name}: groups", 0, 1)
                compared, compared_rows = self._group_sample(ctx, model, rows, reference, per_image[reference], settings,
                                                             layer, size, result)
                ctx.report(f"{self.name}: groups", 1, 1)
        table = ctx.probe.table
        attributes = [a for a in ctx.attributes if a in table]
        result.by_group = _by_group({a: table.loc[pred.index[rows], a].to_numpy(dtype=object) for a in attributes},
                                    per_image, cfg["min_group_size"], rng)
        result.params["n_group_images"] = int(len(compared_rows))
        findings: list[dict[str, Any]] = []
        for attribute in attributes:
            labels = table.loc[pred.index[compared_rows], attribute].to_numpy(dtype=object)
            scope = _scope(labels, compared, reference, cfg["min_group_size"], has_subjects, rng)
            if compared is not None and reference is not None:
                _compared_groups(result.by_group[attribute], labels, compared, reference, cfg["min_group_size"], rng)
            result.metrics[attribute] = scope
        tested = [e for a in attributes for k, e in result.metrics[a].items() if k != "scope" and e["p_value"] is not None]
        for e, p in zip(tested, adjust_pvalues(np.array([e["p_value"] for e in tested], dtype=float), "holm")
                        if tested else []):
            e["p_adjusted"] = boot.rounded(p)
        for attribute in attributes:
            for metric, entry in result.metrics[attribute].items():
                finding = _finding(attribute, metric, entry, cfg["min_difference"])
                if finding:
                    findings.append(finding)
        ctx.report(f"{self.name}: model views", 0, 1)
        view_metrics, views = self._views(ctx, model, size, result, notes)
        ctx.report(f"{self.name}: model views", 1, 1)
        overall.update(view_metrics)
        if not has_subjects:
            notes.append(NO_BOXES[0].upper() + NO_BOXES[1:] + ".")
        overall["methods"] = {m: entries[m] for m in order}
        overall["reference_method"] = reference
        overall["findings"] = findings
        overall["notes"] = notes
        overall["summary"] = _summary(entries, order, findings, overall, cfg["sanity_threshold"])
        result.metrics = {"overall": overall, **{k: v for k, v in result.metrics.items() if k != "overall"}}
        if cfg["figures"]:
            self._figures(ctx, images, maps, order, targets, rows, views, cascade_maps, result)
        result.seconds = time.perf_counter() - start
        return result

    def _group_sample(self, ctx: CheckContext, model: Any, rows: np.ndarray, method: str, first: dict[str, np.ndarray],
                      settings: attr.Settings, layer: Any, size: dict[str, int],
                      result: CheckResult) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The reference method's per-image deletion, insertion and subject share on ``n_group_images`` images:
        the ``rows`` already explained and further seeded rows, explained, scored and measured the same way."""
        import torch  # imported when run: keeps `auditor checks` fast
        from auditor.checks.sampling import load_rows, random_rows, subject_masks
        from auditor.explain import attributions as attr

        pred = ctx.predictions
        pool = random_rows(len(pred), size["n_group_images"], ctx.seed, "explanations-groups")
        extra = pool[~np.isin(pool, rows)][: max(0, size["n_group_images"] - len(rows))]
        if not len(extra):
            return first, rows
        images, extra = load_rows(ctx, extra)
        x = images.to(ctx.device)
        targets = torch.as_tensor(pred.y_pred[extra], dtype=torch.long, device=ctx.device)
        if method == "perturbation_mask":
            m = self._masks(ctx, model, x, targets, size, result)
        else:
            m = attr.attribute(model, method, x, targets, settings, layer=layer).numpy()
            _count(result, method, len(extra), settings, tuple(x.shape[-2:]))
        d, ins = self._faithfulness(ctx, model, x, targets, {method: m}, size["curve_steps"], result, with_random=False)[method]
        share = _subject_share(m, subject_masks(ctx, pred.index[extra], tuple(x.shape[-2:])))
        more = {"deletion_auc": _area(d), "insertion_auc": _area(ins), "subject_share": share}
        return {k: np.concatenate([first[k], more[k]]) for k in more}, np.concatenate([rows, extra])

    def _masks(self, ctx: CheckContext, model: Any, x: torch.Tensor, targets: torch.Tensor, size: dict[str, int],
               result: CheckResult) -> np.ndarray:
        """The spurious check's meaningful-perturbation masks (1 = evidence) for these images."""
        from auditor.explain import attributions as attr  # imported when run: keeps `auditor checks` fast
        from auditor.spurious.masks import learn_masks

        attr._require_gradients(model, x[:1])
        masks = learn_masks(model, x, targets, game="deletion", operator=self.config["operator"], steps=size["mask_steps"],
                            lr=0.1, seed=ctx.seed, batch_size=min(ctx.batch_size, 32), cancel=ctx.cancel)
        result.forward_passes += int(masks.forward_passes)
        result.backward_passes += int(masks.backward_passes)
        return masks.masks[:, 0].numpy()

    def _faithfulness(self, ctx: CheckContext, model: Any, x: torch.Tensor, targets: torch.Tensor,
                      maps: dict[str, np.ndarray], steps: int, result: CheckResult,
                      with_random: bool = True) -> dict[str, tuple[Any, ...]]:
        """Per method (and ``random``): per-image deletion and insertion curves (N, steps + 1). Pixels a map
        ranks equal are taken in one seeded random order shared by every method, so the maps are compared
        only where they say something."""
        import torch  # imported when run: keeps `auditor checks` fast
        from auditor.spurious.masks import saliency_curve

        gen = torch.Generator().manual_seed(ctx.seed % 2**31)
        noise = torch.rand(x.shape[0], *x.shape[-2:], generator=gen, dtype=torch.float64)
        out: dict[str, tuple[Any, ...]] = {}
        todo = [*([("random", None)] if with_random else []), *maps.items()]
        for i, (method, m) in enumerate(todo):
            ctx.report(f"{self.name}: faithfulness", i, len(todo))
            if m is None:
                sal = noise
            else:
                t = torch.as_tensor(m, dtype=torch.float64)
                scale = t.abs().flatten(1).amax(dim=1).clamp_min(1e-30).view(-1, 1, 1)
                sal = t / scale + 1e-7 * noise
            pair = []
            for game in ("deletion", "insertion"):
                pair.append(saliency_curve(model, x, targets, sal.to(x.device), steps, game=game,
                                           operator=self.config["operator"], batch_size=ctx.batch_size).numpy())
                result.forward_passes += x.shape[0] * (steps + 1) + 1
            out[method] = tuple(pair)
        ctx.report(f"{self.name}: faithfulness", len(todo), len(todo))
        return out

    def _sanity(self, ctx: CheckContext, model: Any, x: torch.Tensor, targets: torch.Tensor, maps: dict[str, np.ndarray],
                settings: attr.Settings, layer: Any, size: dict[str, int], threshold: float,
                result: CheckResult) -> tuple[dict[str, dict[str, Any]], list[tuple[str, dict[str, np.ndarray]]]]:
        """Cascading randomisation of the model's layers from the top; per method the rank correlation of
        the maps with the original ones at each stage, and the verdict at the last (all layers random); and
        the first image's map at each stage, titled, for the figure."""
        from auditor.explain import attributions as attr, sanity  # imported when run: keeps `auditor checks` fast

        methods = [m for m in maps if m in METHODS]
        k = min(size["n_sanity"], x.shape[0])
        stages = sanity.cascade_stages(model, size["sanity_stages"])
        if not methods or not stages:
            why = "the model has no parameters to randomise" if not stages else ""
            return {m: {"status": "not_run", "reason": why} for m in methods}, []
        xs, ts = x[:k], targets[:k]
        original = {m: maps[m][:k] for m in methods}
        done = [0]

        def recompute() -> dict[str, np.ndarray]:
            ctx.report(f"{self.name}: sanity", done[0], len(stages))
            done[0] += 1
            out = {}
            for m in methods:
                out[m] = attr.attribute(model, m, xs, ts, settings, layer=layer).numpy()
                _count(result, m, k, settings, tuple(x.shape[-2:]))
            return out

        try:
            staged = sanity.run_cascade(model, stages, ctx.seed, recompute, original)
        except (RuntimeError, ValueError, attr.MethodUnavailable) as exc:
            why = f"the randomised model could not be explained ({str(exc).splitlines()[0][:200]})"
            return {m: {"status": "not_run", "reason": why} for m in methods}, []
        finally:
            ctx.report(f"{self.name}: sanity", len(stages), len(stages))
        rhos = [r for r, _ in staged]
        rng = np.random.default_rng([ctx.seed, zlib.crc32(b"explanations-sanity")])
        out: dict[str, dict[str, Any]] = {}
        for m in methods:
            cascade = [{"stage": s.index, "layer": s.layer, "n_randomised": s.n_randomised,
                        "rank_correlation": _mean(r[m], rng, "")} for s, r in zip(stages, rhos)]
            final = cascade[-1]["rank_correlation"]
            if final["value"] is None:
                out[m] = {"status": "not_run", "reason": "its maps are constant on these images (the method finds no "
                          "signal), so randomising the weights has no ranking to change"}
                continue
            passed = final["value"] < threshold
            out[m] = {"status": "passed" if passed else "failed", "reason": None if passed else (
                f"its maps keep a rank correlation of {final['value']:.2f} with the original ones when every layer is "
                f"random (threshold {threshold:g}): they do not depend on what the model learned"),
                "final_rank_correlation": final, "cascade": cascade, "n_images": int(k)}
        titles = [f"top {s.n_randomised} random" if s.n_randomised < s.total else "all random"
                  for s in stages]
        return out, [(t, first) for t, (_, first) in zip(titles, staged)]

    def _overall(self, entries: dict[str, dict[str, Any]], order: list[str], curves: dict[str, Any], n: int,
                 steps: int, rng: np.random.Generator) -> dict[str, Any]:
        ran = [m for m in order if entries[m]["status"] == "ok"]
        faithful = [m for m in ran if entries[m].get("faithful")]
        checked = [m for m in ran if entries[m].get("sanity", {}).get("status") in ("passed", "failed")]
        failing = [m for m in checked if entries[m]["sanity"]["status"] == "failed"]
        best = min(ran, key=lambda m: entries[m]["deletion_auc"]["value"], default=None)
        rd, ri = curves["random"]
        return {
            "n_images": {"value": int(n), "ci": None},
            "faithful_methods": {"value": len(faithful), "ci": None, "of": len(ran), "names": faithful},
            "methods_failing_sanity": {"value": len(failing), "ci": None, "of": len(checked), "names": failing},
            "best_deletion_auc": ({**entries[best]["deletion_auc"], "method": best} if best else
                                  {"value": None, "ci": None, "reason": "no attribution method could run", "method": None}),
            "random_baseline": {"deletion_auc": _mean(_area(rd), rng, ""), "insertion_auc": _mean(_area(ri), rng, ""),
                                "deletion_curve": boot.rounded_list(rd.mean(axis=0)), "insertion_curve": boot.rounded_list(ri.mean(axis=0))},
            "curve_fractions": boot.rounded_list(np.linspace(0.0, 1.0, steps + 1)),
        }

    def _views(self, ctx: CheckContext, model: Any, size: dict[str, int], result: CheckResult,
               notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """First-layer filters and class-model images: their numbers for the metrics, and the views themselves
        for `_figures`."""
        from auditor.explain import attributions as attr  # imported when run: keeps `auditor checks` fast
        from auditor.explain.model_views import class_model_images, first_layer_filters

        out: dict[str, Any] = {}
        view = first_layer_filters(model)
        views: dict[str, Any] = {"filters": view, "class_models": None}
        if view is None:
            out["first_layer"] = None
            out["first_layer_smoothness"] = {"value": None, "ci": None,
                                             "reason": "the model has no convolutional first layer on the colour channels"}
            notes.append("First-layer filters were not drawn: the model has no convolution on the colour channels.")
        else:
            out["first_layer"] = {"layer": view.layer, "n_filters": view.n_filters, "kernel": list(view.kernel),
                                  "in_channels": view.in_channels, "smoothness": boot.rounded(view.smoothness),
                                  "noisy": bool(view.noisy), "verdict": view.verdict,
                                  "figure": "first_layer_filters" if self.config["figures"] else None}
            out["first_layer_smoothness"] = {"value": boot.rounded(view.smoothness), "ci": None,
                                             "reason": None if view.smoothness is not None else view.verdict}
        classes = list(range(min(20, len(ctx.classes))))
        try:
            cm = class_model_images(model, len(ctx.classes), tuple(ctx.input_size), classes=classes,
                                    steps=size["class_model_steps"], seed=ctx.seed, device=ctx.device)
        except (RuntimeError, ValueError, attr.MethodUnavailable) as exc:
            out["class_models"] = None
            notes.append(f"Class models were not drawn: {str(exc).splitlines()[0][:300]}")
            return out, views
        views["class_models"] = cm
        result.forward_passes += int(cm.forward_passes)
        result.backward_passes += int(cm.backward_passes)
        out["class_models"] = {"classes": [_class_name(ctx, c) for c in cm.classes], "steps": size["class_model_steps"],
                               "final_probability": boot.rounded_list(np.asarray(cm.final_probability)),
                               "figure": "class_models" if self.config["figures"] else None}
        return out, views

    def _figures(self, ctx: CheckContext, images: torch.Tensor, maps: dict[str, np.ndarray], order: list[str],
                 targets: torch.Tensor, rows: np.ndarray, views: dict[str, Any],
                 cascade_maps: list[tuple[str, dict[str, np.ndarray]]], result: CheckResult) -> None:
        try:
            from auditor.explain import figures as fig
        except ImportError as exc:  # matplotlib missing: the tables carry the numbers
            log.warning("explanations figures skipped: %s", exc)
            return
        shown = [m for m in order if m in maps]
        k = min(N_FIGURE_ROWS, images.shape[0])
        titles = [f"#{int(ctx.predictions.index[r])}: {_class_name(ctx, int(t))}" for r, t in zip(rows[:k], targets[:k].tolist())]
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


_NO_CASCADE = {"perturbation_mask": "a learned mask is an optimisation of the model's output, recomputed by the "
                                    "deletion curves it is scored on; the cascade is run on the map methods"}


def _passes(method: str, n: int, s: attr.Settings, size: tuple[int, ...], mask_steps: int) -> tuple[int, int]:
    """Images through the model (forward, backward) for ``method`` on ``n`` images (the audit's cost unit)."""
    if method == "perturbation_mask":  # `learn_masks`: its input check, the originals, every step, the final masks
        return (1 + n + n * (mask_steps + 1), n * mask_steps) if n else (0, 0)
    h, w = size[-2], size[-1]
    win, stride = min(s.occlusion_window, h, w), max(1, s.occlusion_stride)
    windows = ((h - win) // stride + 1) * ((w - win) // stride + 1)
    forward, backward = {"integrated_gradients": (s.ig_steps, s.ig_steps), "saliency": (1, 1),
                         "smoothgrad": (s.nt_samples, s.nt_samples), "grad_cam": (1, 1),
                         "occlusion": (windows + 1, 0)}.get(method, (0, 0))
    return n * forward, n * backward


def _count(result: CheckResult, method: str, n: int, s: attr.Settings, size: tuple[int, ...]) -> None:
    """Add ``method``'s passes on ``n`` images to ``result``."""
    forward, backward = _passes(method, n, s, size, 0)
    result.forward_passes += forward
    result.backward_passes += backward


def _class_name(ctx: CheckContext, k: int) -> str:
    """The class's name, or its index where the model has more outputs than names."""
    return str(ctx.classes[k]) if 0 <= k < len(ctx.classes) else str(k)


def _not_run(method: str, reason: str) -> dict[str, Any]:
    return {"status": "not_run", "reason": _strip(reason), "label": LABELS[method]}


def _strip(text: str) -> str:
    return text.removeprefix("Grad-CAM was not run: ")


def _subject_share(m: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Share of |attribution| inside the subject per image; NaN without a subject or with an empty map."""
    a = np.abs(m).reshape(len(m), -1)
    s = subjects.reshape(len(subjects), -1)
    total = a.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (a * np.nan_to_num(s)).sum(axis=1) / total
    return np.where(np.isfinite(s).all(axis=1) & (total > 0), share, np.nan)


def _faithfulness_entry(d: np.ndarray, ins: np.ndarray, random: tuple[np.ndarray, np.ndarray],
                        rng: np.random.Generator) -> dict[str, Any]:
    """Deletion and insertion areas, their paired gains over the random ranking, and the verdict."""
    da, ia, rda, ria = _area(d), _area(ins), _area(random[0]), _area(random[1])
    gain = _mean(rda - da, rng, "")
    lo = gain["ci"][0] if gain["ci"] else gain["value"]
    return {"deletion_auc": _mean(da, rng, ""), "insertion_auc": _mean(ia, rng, ""), "deletion_gain": gain,
            "insertion_gain": _mean(ia - ria, rng, ""), "faithful": bool(lo is not None and lo > 0),
            "deletion_curve": boot.rounded_list(d.mean(axis=0)), "insertion_curve": boot.rounded_list(ins.mean(axis=0))}


def _area(curves: np.ndarray) -> np.ndarray:
    """Area under each row of per-image curves (N, S + 1)."""
    import torch  # imported when run: keeps `auditor checks` fast
    from auditor.spurious.masks import curve_area

    return curve_area(torch.as_tensor(curves)).numpy()


def _reference(entries: dict[str, dict[str, Any]]) -> str | None:
    """The method the groups are compared with: the most faithful (largest deletion gain) among those that
    are faithful and passed the sanity check; else among the faithful; else among those that ran."""
    ran = {m: e for m, e in entries.items() if e["status"] == "ok"}
    tiers = [[m for m, e in ran.items() if e.get("faithful") and e.get("sanity", {}).get("status") == "passed"],
             [m for m, e in ran.items() if e.get("faithful")], list(ran)]
    for tier in tiers:
        if tier:
            return max(tier, key=lambda m: ran[m]["deletion_gain"]["value"] if ran[m]["deletion_gain"]["value"] is not None
                       else -np.inf)
    return None


def _labels_of(labels: np.ndarray) -> list[str]:
    return sorted({str(v) for v in labels if v is not None and v == v})


def _scope(labels: np.ndarray, values: dict[str, np.ndarray] | None, method: str | None, min_n: int, has_subjects: bool,
           rng: np.random.Generator) -> dict[str, Any]:
    """The differences between an attribute's groups (max - min of the group means) for the reference method,
    with a bootstrap interval that resamples within each group and a permutation test (group labels shuffled
    across the images; one-sided: a gap at least this large by chance)."""
    out: dict[str, Any] = {"scope": {"kind": "attribute"}}
    names = _labels_of(labels)
    big = [g for g in names if sum(str(v) == g for v in labels) >= min_n]
    for metric, key in GROUP_METRICS.items():
        entry: dict[str, Any] = {"value": None, "ci": None, "method": method, "lowest": None, "highest": None,
                                 "groups_compared": 0, "p_value": None, "p_adjusted": None, "reason": None}
        if values is None:
            entry["reason"] = "no attribution method could run"
        elif metric == "subject_share" and not has_subjects:
            entry["reason"] = NO_BOXES
        else:
            means, draws, kept, pooled = [], [], [], []
            for g in big:
                v = values[metric][np.array([str(x) == g for x in labels])]
                v = v[np.isfinite(v)]
                if v.size >= min_n:
                    kept.append(g)
                    means.append(v.mean())
                    draws.append(boot.mean_draws(v, rng, N_BOOT))
                    pooled.append(v)
            entry["groups_compared"] = len(kept)
            if len(kept) < 2:
                entry["reason"] = (f"fewer than two groups have {min_n} or more images (groups: "
                                   f"{', '.join(f'{g}' for g in names) or 'none'}); raise n_images or --budget")
            else:
                lo, hi = int(np.argmin(means)), int(np.argmax(means))
                entry.update(value=boot.rounded(means[hi] - means[lo]), lowest=kept[lo], highest=kept[hi],
                             ci=boot.interval(boot.disparity_draws(np.stack(draws, axis=1))["difference"], LEVEL),
                             p_value=boot.rounded(permutation_pvalue(means[hi] - means[lo], _permuted_gaps(pooled, rng))))
        out[key] = entry
    return out


def _permuted_gaps(values: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Max - min of the group means with the images' group labels shuffled, ``N_PERM`` times."""
    pooled = np.concatenate(values)
    sizes = np.array([len(v) for v in values])
    owner = np.repeat(np.arange(len(values)), sizes)
    shuffled = rng.permuted(np.broadcast_to(pooled, (N_PERM, pooled.size)), axis=1)
    sums = np.stack([shuffled[:, owner == g].sum(axis=1) for g in range(len(values))], axis=1)
    means = sums / sizes
    return means.max(axis=1) - means.min(axis=1)


def _finding(attribute: str, metric: str, entry: Any, min_difference: float) -> dict[str, Any] | None:
    """A finding when the difference is at least ``min_difference`` and its Holm-adjusted permutation p-value
    is below `ALPHA` (the bootstrap interval of a max - min gap sits above 0 almost always, so it cannot decide)."""
    if metric == "scope" or not isinstance(entry, dict) or entry.get("value") is None or entry.get("p_adjusted") is None:
        return None
    if entry["value"] < min_difference or entry["p_adjusted"] >= ALPHA:
        return None
    what = {"subject_share_difference": "share of attribution on the subject",
            "deletion_auc_difference": "deletion AUC (how fast removing the attributed pixels destroys the prediction)",
            "insertion_auc_difference": "insertion AUC (how fast the attributed pixels restore the prediction)"}[metric]
    text = (f"By {attribute}, the {what} differs by {entry['value']:.2f} between {entry['highest']} (highest) and "
            f"{entry['lowest']} (lowest), 95% interval {entry['ci'][0]:.2f} to {entry['ci'][1]:.2f}, "
            f"permutation p = {entry['p_adjusted']:.3g} (Holm), "
            f"under {LABELS.get(entry['method'], entry['method'])}: the model looks at different evidence for these groups.")
    return {"attribute": attribute, "metric": metric, "method": entry["method"], "lowest": entry["lowest"],
            "highest": entry["highest"], "value": entry["value"], "ci": entry["ci"], "p_adjusted": entry["p_adjusted"],
            "text": text}


def _by_group(groups: dict[str, np.ndarray], per_image: dict[str, dict[str, np.ndarray]], min_n: int,
              rng: np.random.Generator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attribute, labels in groups.items():
        per: dict[str, Any] = {}
        for g in _labels_of(labels):
            sel = np.array([str(v) == g for v in labels])
            per[g] = {"n": int(sel.sum()), "insufficient": bool(sel.sum() < min_n),
                      "methods": {m: {k: _mean(v[sel], rng, NO_BOXES if k == "subject_share" else "no image")
                                      for k, v in vals.items()} for m, vals in per_image.items()}}
        out[attribute] = per
    return out


def _compared_groups(per: dict[str, Any], labels: np.ndarray, values: dict[str, np.ndarray], method: str, min_n: int,
                     rng: np.random.Generator) -> None:
    """Set each group's ``n`` and ``insufficient`` by the images the groups are compared on, and the
    reference method's numbers over them; ``n_all_methods`` keeps the count every method ran on."""
    for g in _labels_of(labels):
        sel = np.array([str(v) == g for v in labels])
        entry = per.setdefault(g, {"n": 0, "insufficient": True, "methods": {}})
        entry["n_all_methods"] = entry["n"]
        entry["n"], entry["insufficient"] = int(sel.sum()), bool(sel.sum() < min_n)
        entry["methods"][method] = {k: _mean(v[sel], rng, NO_BOXES if k == "subject_share" else "no image")
                                    for k, v in values.items()}


def _summary(entries: dict[str, dict[str, Any]], order: list[str], findings: list[dict[str, Any]],
             overall: dict[str, Any], threshold: float) -> str:
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


def _mean(values: np.ndarray, rng: np.random.Generator, reason: str) -> dict[str, Any]:
    return boot.mean_summary(values, rng, reason or "no value", N_BOOT, LEVEL)
