"""Spurious correlation: learn meaningful-perturbation masks for a sample of the probe, find where the
model's evidence lies (per class, per group, on or off the subject, at the same place in every image),
and confirm each suspected cue by removing it and transplanting it (`auditor.spurious`).

A finding is reported only when its counterfactual confirmation holds; when nothing holds, the
check says so. Nothing here is told where or what the cue is.
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
from auditor.checks.significance import adjust_pvalues, significant
from auditor.results import metric, no_metric
from auditor.spurious import OPERATORS
from auditor.spurious import evidence as ev

if TYPE_CHECKING:
    import torch

    from auditor.spurious.counterfactual import Confirmation

__all__ = ["Spurious"]

log = logging.getLogger(__name__)

DELETION_STEPS = 20
NO_BOXES = "the probe has no subject boxes or masks, so evidence on and off the subject cannot be told apart"


@register_check
class Spurious(Check):
    """Where the model's evidence lies, and which off-subject or fixed-place cues it really uses."""

    name = "spurious"
    description = ("Meaningful-perturbation masks for a sample of the probe: evidence maps per class and group, off-subject "
                   "share, consistency of place, deletion score, and counterfactually confirmed cues.")
    order = 20
    scoped = False
    params = {
        "n_images": Param(int, 0, "images to learn masks for", low=0, high=100_000, budget=(64, 128, 384)),
        "steps": Param(int, 0, "optimisation steps per mask", low=0, high=5000, budget=(40, 60, 200)),
        "lr": Param(float, 0.1, "Adam learning rate of the masks", low=1e-4, high=10.0),
        "grid": Param(int, 8, "cells per side of the evidence maps", low=2, high=32),
        "operator": Param(str, "fill", "how a masked region is removed (fill also removes colour and texture)", choices=OPERATORS),
        "min_flip_rate": Param(float, 0.2, "share of predictions a cue's removal or transplant must flip", low=0.0, high=1.0),
        "min_margin": Param(float, 0.15, "how much more than the control region the cue must flip", low=0.0, high=1.0),
        "alpha": Param(float, 0.05, "level of the exact McNemar test of cue flips against control flips", low=1e-6, high=0.5),
        "figures": Param(bool, True, "draw the evidence, example and before/after figures"),
    }
    metric_names = ("n_findings", "n_off_subject_findings", "off_subject_share", "max_consistency", "deletion_score",
                    "not_converged", "n_images")

    def plan(self, ctx: PlanContext | CheckContext) -> PassPlan:
        """The input-gradient probe, the masks, the two deletion curves, and one tested region per class (each tested region costs up to
        two passes per sampled image; up to `ev.CANDIDATE_LIMIT` per class are tested, as many as the
        evidence shows)."""
        n_images, steps = self.at_budget(ctx.budget).values()
        n = min(n_images, ctx.n_rows)
        f = 2 + n + n * (steps + 1) + 2 * (n * (DELETION_STEPS + 1) + 1) + 2 * n * ctx.n_classes
        return PassPlan(f, 1 + n * steps, "the regions tested depend on where the evidence lies: assumed one per class")

    def run(self, ctx: CheckContext) -> CheckResult:
        import torch  # imported when run: keeps `auditor checks` fast
        from auditor.attacks.masking import gradient_health
        from auditor.checks.sampling import balanced_rows, load_rows, subject_masks
        from auditor.spurious.counterfactual import confirm
        from auditor.spurious.figure_set import check_figures
        from auditor.spurious.masks import learn_masks

        start = time.perf_counter()
        cfg = self.config
        pred = ctx.predictions
        n_images, steps = self.at_budget(ctx.budget).values()
        rows = balanced_rows(pred.y_pred, n_images, ctx.seed, "spurious")
        images, rows = load_rows(ctx, rows)
        predicted = pred.y_pred[rows]
        h, w = images.shape[-2:]
        result = CheckResult(params={**cfg, "n_images": int(len(rows)), "steps": steps, "game": "deletion", "input_size": [h, w],
                                     "candidate_factor": ev.CANDIDATE_FACTOR, "candidate_min_consistency": ev.MIN_CONSISTENCY,
                                     "candidates_per_class": ev.CANDIDATE_LIMIT})

        def model(x: torch.Tensor) -> torch.Tensor:
            return ctx.model.module(x.to(ctx.device))

        targets = torch.as_tensor(predicted, dtype=torch.long)
        # the masks are learned by gradient descent on the input: a model without input gradients (its forward
        # under no_grad, or an op with no backward, e.g. the fused attention a ViT traced under no_grad keeps)
        # gets a reason, not a crash
        health = gradient_health(ctx.model.module, images[:1].to(ctx.device), targets[:1].to(ctx.device), batch_size=1)
        result.count(health)
        if not health["differentiable"]:
            return _not_differentiable(result, str(health["reason"]), start)
        masks = learn_masks(ctx.model.module, images.to(ctx.device), targets.to(ctx.device), game="deletion",
                            operator=cfg["operator"], steps=steps, lr=cfg["lr"], seed=ctx.seed, batch_size=min(ctx.batch_size, 32),
                            progress=lambda _s, d, t: ctx.report(f"{self.name}: masks", d, t), cancel=ctx.cancel)
        result.count(masks)
        evidence = masks.masks[:, 0].numpy()  # 1 marks evidence: the region whose deletion destroys the prediction
        grids = ev.to_grid(evidence, min(cfg["grid"], h, w))
        subjects = subject_masks(ctx, pred.index[rows], (h, w))
        has_subjects = bool(np.isfinite(subjects).all(axis=(1, 2)).any())
        off = ev.off_subject_share(evidence, subjects)
        cells_off = ev.off_subject_cells(grids, subjects) if has_subjects else None
        rng = np.random.default_rng([ctx.seed, zlib.crc32(b"spurious-boot")])

        scores = self._deletion_scores(ctx, model, images, targets, masks.masks[:, 0], result)
        converged = masks.converged[:, 0].numpy().astype(bool)
        maps = ev.class_maps(grids, predicted, ctx.classes)
        table = ctx.probe.table.loc[pred.index[rows]]
        groups = {a: table[a].to_numpy(dtype=object) for a in ctx.attributes if a in table}

        candidates: list[dict[str, Any]] = []
        carrier_rows: list[np.ndarray] = []
        for k, cls in enumerate(ctx.classes):
            ctx.report(f"{self.name}: regions", k, len(ctx.classes))
            sel = predicted == k
            if not sel.any():
                continue
            mean = grids[sel].mean(axis=0)
            for cand in ev.candidates(mean, ev.consistency(grids[sel]), (h, w), off_subject_cells=cells_off):
                cells = np.zeros(grids.shape[1:], bool)
                for c in cand.cells:
                    cells[c] = True
                carriers = grids[:, cells].sum(axis=1) >= 2.0 * cells.sum() / cells.size
                conf = confirm(model, images, predicted, carriers, cand.box, k, mean, groups=groups,
                               min_flip_rate=cfg["min_flip_rate"], min_margin=cfg["min_margin"], alpha=cfg["alpha"],
                               batch_size=ctx.batch_size)
                result.forward_passes += conf.forward_passes
                candidates.append(_entry(cls, cand, conf, (h, w), carriers))
                carrier_rows.append(np.flatnonzero(carriers & (predicted == k)))
        ctx.report(f"{self.name}: regions", len(ctx.classes), len(ctx.classes))
        _adjust(candidates, cfg["alpha"])
        keep = [i for i, c in enumerate(candidates) if c["confirmed"] and not c["on_subject"]]
        findings = [candidates[i] for i in keep]
        for i, f in enumerate(findings, 1):
            f["id"] = i

        metrics = result.metrics
        metrics["overall"] = {
            "n_findings": metric(len(findings)),
            # without subject boxes off-subject cues cannot be counted: no value, never a 0 that passes
            "n_off_subject_findings": (metric(sum(1 for f in findings if f["off_subject"] is not None), reason=None)
                                       if has_subjects else no_metric(NO_BOXES)),
            "off_subject_share": boot.mean_summary(off, rng, NO_BOXES),
            "max_consistency": metric(boot.rounded(max((c["consistency"] for c in candidates), default=ev.consistency(grids).max()))),
            "deletion_score": {**boot.mean_summary(scores[0], rng, "no mask could be scored"), "random_baseline": boot.rounded(scores[1].mean())},
            "not_converged": metric(boot.rounded((~converged).mean()), n=int((~converged).sum()), of=len(converged)),
            "n_images": metric(int(len(rows))),
        }
        metrics["evidence_maps"] = maps
        metrics["not_predicted"] = [c for c, m in maps.items() if m is None]
        metrics["findings"] = findings
        metrics["candidates"] = candidates
        metrics["summary"] = _summary(findings, candidates, has_subjects)
        result.by_group = _by_group(groups, grids, off, rng)
        if cfg["figures"]:
            for i, f in enumerate(findings, 1):
                f["figure"] = f"finding_{i}_counterfactual"
            ctx.report(f"{self.name}: figures", 0, 1)
            try:
                result.figures = check_figures(model, images, evidence, predicted, ctx.classes, maps, findings,
                                               [carrier_rows[i] for i in keep])
            except ImportError as exc:  # matplotlib missing: the tables carry the numbers
                log.warning("spurious figures skipped: %s", exc)
                for f in findings:
                    f["figure"] = None
            ctx.report(f"{self.name}: figures", 1, 1)
        result.seconds = time.perf_counter() - start
        return result

    def _deletion_scores(self, ctx: CheckContext, model: Any, images: torch.Tensor, targets: torch.Tensor,
                         masks: torch.Tensor, result: CheckResult) -> tuple[np.ndarray, np.ndarray]:
        """Deletion score of the learned masks and of a random pixel order (the floor a method must beat).
        Pixels the mask ranks equal (its flat zero background) are taken in that same random order, not
        row by row, so the two curves differ only where the mask says something."""
        import torch  # imported when run: keeps `auditor checks` fast
        from auditor.spurious.masks import deletion_score

        gen = torch.Generator().manual_seed(ctx.seed % 2**31)
        noise = torch.rand(masks.shape, generator=gen)
        out = []
        for i, saliency in enumerate((masks.double() + 1e-7 * noise.double(), noise)):
            ctx.report(f"{self.name}: deletion curves", i, 2)
            out.append(deletion_score(model, images.to(ctx.device), targets.to(ctx.device), saliency.to(ctx.device),
                                      steps=DELETION_STEPS, operator=self.config["operator"], batch_size=ctx.batch_size).numpy())
            result.forward_passes += len(images) * (DELETION_STEPS + 1) + 1
        ctx.report(f"{self.name}: deletion curves", 2, 2)
        return out[0], out[1]


def _not_differentiable(result: CheckResult, why: str, start: float) -> CheckResult:
    """The check's result for a model without input gradients: every metric None with the reason; findings and
    candidates None (not measured, unlike an empty list: none found)."""
    reason = f"the model has no input gradient, which the masks are learned with ({why})"
    result.metrics["overall"] = {name: no_metric(reason) for name in Spurious.metric_names}
    result.metrics.update({"evidence_maps": {}, "not_predicted": [], "findings": None, "candidates": None,  # None: not measured
                           "not_differentiable": reason,
                           "summary": f"Not measured: {reason}. Load the model in a form that keeps its gradients (a state_dict "
                                      "with its architecture, or a TorchScript/export saved outside torch.no_grad)."})
    result.params["n_images"] = 0
    result.seconds = time.perf_counter() - start
    return result


def _adjust(candidates: list[dict[str, Any]], alpha: float) -> None:
    """Holm-adjust the candidates' p-values as one family; a candidate stays confirmed only when its
    adjusted p-value is below ``alpha``. Sets each candidate's verdict."""
    raw = np.array([np.nan if c["p_value"] is None else c["p_value"] for c in candidates], dtype=float)
    adjusted = adjust_pvalues(raw, "holm") if len(raw) else raw
    for c, p in zip(candidates, adjusted):
        c["p_adjusted"] = boot.rounded(p)
        c["significant"] = significant(c["p_adjusted"], alpha)  # the rule every check uses
        c["confirmed"] = bool(c["confirmed"] and c["significant"])
        if c["confirmed"] and c["on_subject"]:
            c["verdict"] = "confirmed, but it lies on the subject: the model using the subject is not a shortcut"
        elif c["confirmed"]:
            c["verdict"] = "confirmed: removing or transplanting it flips predictions well beyond the control region"
        else:
            c["verdict"] = ("not confirmed: removing or transplanting it flips too few predictions, or not significantly "
                            "more than the control region")


def _entry(cls: str, cand: ev.Candidate, conf: Confirmation, size: tuple[int, int], carriers: np.ndarray) -> dict[str, Any]:
    on_subject = cand.off_subject is not None and cand.off_subject < 0.5
    return {
        "class": cls, "box": list(cand.box), "input_size": list(size), "evidence_share": boot.rounded(cand.share),
        "consistency": boot.rounded(cand.consistency), "off_subject": boot.rounded(cand.off_subject),
        "removal_flip_rate": conf.removal_flip_rate, "transplant_flip_rate": conf.transplant_flip_rate,
        "n_removal": conf.n_removal, "n_transplant": conf.n_transplant, "control_box": list(conf.control),
        "control_removal_flip_rate": conf.control_removal_flip_rate,
        "control_transplant_flip_rate": conf.control_transplant_flip_rate, "p_value": conf.p_value,
        "p_adjusted": None, "confirmed": bool(conf.confirmed), "on_subject": on_subject, "verdict": "", "by_group": conf.by_group,
        "n_carriers": int(carriers.sum()), "figure": None,
    }


def _summary(findings: list[dict[str, Any]], candidates: list[dict[str, Any]], has_subjects: bool) -> str:
    if findings:
        parts = [f"{f['class']} at x {f['box'][0]}-{f['box'][2]}, y {f['box'][1]}-{f['box'][3]}"
                 + (f" ({f['off_subject']:.0%} off the subject)" if f["off_subject"] is not None else "") for f in findings]
        return f"{len(findings)} confirmed cue(s): " + "; ".join(parts) + "."
    if not candidates:
        return "No cue was found: the model's evidence does not concentrate at one place across images."
    on = sum(1 for c in candidates if c["confirmed"] and c["on_subject"])
    text = f"No cue was confirmed: {len(candidates)} region(s) where evidence concentrates were tested."
    if on:
        text += f" {on} of them change predictions but lie on the subject: the model using the subject, not a shortcut."
    if len(candidates) - on:
        text += f" {len(candidates) - on} changed predictions too little, or no more than a control region."
    if not has_subjects:
        text += " The probe has no subject boxes, so on- and off-subject evidence were not told apart."
    return text


def _by_group(groups: dict[str, np.ndarray], grids: np.ndarray, off: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """Per attribute and group: images, mean evidence map and off-subject share with its interval."""
    out: dict[str, Any] = {}
    for attr, labels in groups.items():
        per: dict[str, Any] = {}
        for g in sorted({str(v) for v in labels if v is not None and v == v}):
            sel = np.array([str(v) == g for v in labels])
            mean = grids[sel].mean(axis=0)
            per[g] = {"n": int(sel.sum()),
                      "evidence_map": [[boot.rounded(x) for x in row] for row in mean / mean.sum()] if mean.sum() > 0 else None,
                      "off_subject_share": boot.mean_summary(off[sel], rng, NO_BOXES)}
        out[attr] = per
    return out
