"""The explanations check's scores: what each attribution method costs in model passes, the
perturbation masks, deletion and insertion curves against a random ranking of the pixels
(faithfulness), the weight-randomisation cascade (sanity), the share of attribution on the subject,
and the method the groups are compared with."""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.checks import bootstrap as boot
from auditor.checks.base import CheckContext, CheckResult
from auditor.explain import METHODS
from auditor.results import metric, no_metric

if TYPE_CHECKING:
    import torch

    from auditor.explain import attributions as attr

__all__ = ["CHECK", "N_BOOT", "LEVEL", "NO_CASCADE", "passes", "count", "mean", "area", "subject_share",
           "faithfulness_entry", "reference", "perturbation_masks", "faithfulness_curves", "sanity_cascade", "overall"]

CHECK = "explanations"
"""The check's name, which its progress labels start with."""
N_BOOT = 1000
LEVEL = 0.95
NO_CASCADE = {"perturbation_mask": "a learned mask is an optimisation of the model's output, recomputed by the "
                                   "deletion curves it is scored on; the cascade is run on the map methods"}


def passes(method: str, n: int, s: attr.Settings, size: tuple[int, ...], mask_steps: int) -> tuple[int, int]:
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


def count(result: CheckResult, method: str, n: int, s: attr.Settings, size: tuple[int, ...]) -> None:
    """Add ``method``'s passes on ``n`` images to ``result``."""
    forward, backward = passes(method, n, s, size, 0)
    result.count(forward=forward, backward=backward)


def mean(values: np.ndarray, rng: np.random.Generator, reason: str) -> dict[str, Any]:
    """The mean of the finite ``values`` with its bootstrap interval, or no value and ``reason``."""
    return boot.mean_summary(values, rng, reason or "no value", N_BOOT, LEVEL)


def area(curves: np.ndarray) -> np.ndarray:
    """Area under each row of per-image curves (N, S + 1)."""
    import torch  # imported when run: keeps `auditor checks` fast
    from auditor.spurious.masks import curve_area

    return curve_area(torch.as_tensor(curves)).numpy()


def subject_share(m: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Share of |attribution| inside the subject per image; NaN without a subject or with an empty map."""
    a = np.abs(m).reshape(len(m), -1)
    s = subjects.reshape(len(subjects), -1)
    total = a.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (a * np.nan_to_num(s)).sum(axis=1) / total
    return np.where(np.isfinite(s).all(axis=1) & (total > 0), share, np.nan)


def faithfulness_entry(d: np.ndarray, ins: np.ndarray, random: tuple[np.ndarray, np.ndarray],
                       rng: np.random.Generator) -> dict[str, Any]:
    """Deletion and insertion areas, their paired gains over the random ranking, and the verdict."""
    da, ia, rda, ria = area(d), area(ins), area(random[0]), area(random[1])
    gain = mean(rda - da, rng, "")
    lo = gain["ci"][0] if gain["ci"] else gain["value"]
    return {"deletion_auc": mean(da, rng, ""), "insertion_auc": mean(ia, rng, ""), "deletion_gain": gain,
            "insertion_gain": mean(ia - ria, rng, ""), "faithful": bool(lo is not None and lo > 0),
            "deletion_curve": boot.rounded_list(d.mean(axis=0)), "insertion_curve": boot.rounded_list(ins.mean(axis=0))}


def reference(entries: dict[str, dict[str, Any]]) -> str | None:
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


def perturbation_masks(ctx: CheckContext, model: Any, x: torch.Tensor, targets: torch.Tensor, size: dict[str, int],
                       operator: str, result: CheckResult) -> np.ndarray:
    """The spurious check's meaningful-perturbation masks (1 = evidence) for these images."""
    from auditor.explain import attributions as attr  # imported when run: keeps `auditor checks` fast
    from auditor.spurious.masks import learn_masks

    attr._require_gradients(model, x[:1])
    masks = learn_masks(model, x, targets, game="deletion", operator=operator, steps=size["mask_steps"],
                        lr=0.1, seed=ctx.seed, batch_size=min(ctx.batch_size, 32), cancel=ctx.cancel)
    result.count(masks)
    return masks.masks[:, 0].numpy()


def faithfulness_curves(ctx: CheckContext, model: Any, x: torch.Tensor, targets: torch.Tensor,
                        maps: dict[str, np.ndarray], steps: int, operator: str, result: CheckResult,
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
        ctx.report(f"{CHECK}: faithfulness", i, len(todo))
        if m is None:
            sal = noise
        else:
            t = torch.as_tensor(m, dtype=torch.float64)
            scale = t.abs().flatten(1).amax(dim=1).clamp_min(1e-30).view(-1, 1, 1)
            sal = t / scale + 1e-7 * noise
        pair = []
        for game in ("deletion", "insertion"):
            pair.append(saliency_curve(model, x, targets, sal.to(x.device), steps, game=game,
                                       operator=operator, batch_size=ctx.batch_size).numpy())
            result.forward_passes += x.shape[0] * (steps + 1) + 1
        out[method] = tuple(pair)
    ctx.report(f"{CHECK}: faithfulness", len(todo), len(todo))
    return out


def sanity_cascade(ctx: CheckContext, model: Any, x: torch.Tensor, targets: torch.Tensor, maps: dict[str, np.ndarray],
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
        ctx.report(f"{CHECK}: sanity", done[0], len(stages))
        done[0] += 1
        out = {}
        for m in methods:
            out[m] = attr.attribute(model, m, xs, ts, settings, layer=layer).numpy()
            count(result, m, k, settings, tuple(x.shape[-2:]))
        return out

    try:
        staged = sanity.run_cascade(model, stages, ctx.seed, recompute, original)
    except (RuntimeError, ValueError, attr.MethodUnavailable) as exc:
        why = f"the randomised model could not be explained ({str(exc).splitlines()[0][:200]})"
        return {m: {"status": "not_run", "reason": why} for m in methods}, []
    finally:
        ctx.report(f"{CHECK}: sanity", len(stages), len(stages))
    rhos = [r for r, _ in staged]
    rng = np.random.default_rng([ctx.seed, zlib.crc32(b"explanations-sanity")])
    out: dict[str, dict[str, Any]] = {}
    for m in methods:
        cascade = [{"stage": s.index, "layer": s.layer, "n_randomised": s.n_randomised,
                    "rank_correlation": mean(r[m], rng, "")} for s, r in zip(stages, rhos)]
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


def overall(entries: dict[str, dict[str, Any]], order: list[str], curves: dict[str, Any], n: int,
            steps: int, rng: np.random.Generator) -> dict[str, Any]:
    """The check's overall metrics over the methods that ran: images, faithful methods, methods failing
    the sanity check, the best deletion AUC, and the random baseline's curves."""
    ran = [m for m in order if entries[m]["status"] == "ok"]
    faithful = [m for m in ran if entries[m].get("faithful")]
    checked = [m for m in ran if entries[m].get("sanity", {}).get("status") in ("passed", "failed")]
    failing = [m for m in checked if entries[m]["sanity"]["status"] == "failed"]
    best = min(ran, key=lambda m: entries[m]["deletion_auc"]["value"], default=None)
    rd, ri = curves["random"]
    return {
        "n_images": metric(int(n)),
        "faithful_methods": metric(len(faithful), of=len(ran), names=faithful),
        "methods_failing_sanity": metric(len(failing), of=len(checked), names=failing),
        "best_deletion_auc": ({**entries[best]["deletion_auc"], "method": best} if best else
                              no_metric("no attribution method could run", method=None)),
        "random_baseline": {"deletion_auc": mean(area(rd), rng, ""), "insertion_auc": mean(area(ri), rng, ""),
                            "deletion_curve": boot.rounded_list(rd.mean(axis=0)), "insertion_curve": boot.rounded_list(ri.mean(axis=0))},
        "curve_fractions": boot.rounded_list(np.linspace(0.0, 1.0, steps + 1)),
    }
