"""Adversarial robustness: how easily the model is fooled, for whom, and whether the measurement itself
can be trusted (`auditor.attacks`).

White-box FGSM and PGD over an eps grid (L-inf and L2) on a seeded sample of the probe; the minimal
L-inf eps that flips each image; robust accuracy per group and intersection at a reference eps with
the group-metrics intervals, gaps and tests; black-box Square and HopSkipJump through ART and a
transfer attack from a substitute trained on the model's own answers, with queries counted; and the
gradient-masking diagnostics that decide whether the robustness numbers can be taken at face value.
"""
from __future__ import annotations

import logging
import math
import time
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from auditor.checks.attack_groups import GAP_METRICS, robust_accuracy_by_group
from auditor.checks import bootstrap as boot
from auditor.checks.base import Check, CheckContext, CheckResult, Param, PassPlan, PlanContext, ProgressFn
from auditor.checks.registry import register_check
from auditor.errors import UsageError
from auditor.results import metric, no_metric
from auditor.validation import Satisfies

if TYPE_CHECKING:
    import torch

    from auditor.attacks import masking

__all__ = ["Attacks", "parse_eps"]

log = logging.getLogger(__name__)

N_DIAGNOSE = 32  # images for the gradient and determinism diagnostics
MIN_EPS_TOL = 1 / 255  # `minimal_eps`'s default L-inf tolerance, which the check uses
N_BOOT = 1000


def parse_eps(text: str | Sequence[float], norm: str, param: str = "eps") -> list[float]:
    """``"1/255,2/255,0.05"`` (or a list of numbers) -> sorted floats; each in (0, 1] for linf, > 0 for l2;
    ValueError otherwise."""
    try:
        items = str(text).split(",") if isinstance(text, str) else list(text)
        values = sorted(float(Fraction(t.strip()) if isinstance(t, str) else t) for t in items if str(t).strip())
    except (ValueError, TypeError, ZeroDivisionError):
        values = []
    if not values or any(not math.isfinite(v) or v <= 0 or (norm == "linf" and v > 1) for v in values):
        raise ValueError(f"{param}: {_grid_text(norm)}")
    return values


def _grid_text(norm: str) -> str:
    return (f"a comma-separated list of eps values {'in (0, 1]' if norm == 'linf' else '> 0'} "
            "(fractions like 8/255 allowed)")


def _eps_param(default: str, help: str, norm: str) -> Param:
    """A parameter holding an eps grid: text parsed once, when the check is built."""
    def parse(text: str) -> list[float]:
        try:
            return parse_eps(text, norm)
        except ValueError:
            raise ValueError() from None  # the check's message already says what the grid must be

    return Param(str, default, help, parse=parse, satisfies=Satisfies(lambda v: bool(parse_eps(v, norm)), _grid_text(norm)))


@register_check
class Attacks(Check):
    """White-box, black-box and transfer attacks; robust accuracy per group; gradient-masking diagnostics."""

    name = "attacks"
    description = ("FGSM and PGD (L-inf, L2) over an eps grid, minimal flipping eps, robust accuracy per group with "
                   "intervals, ART Square/HopSkipJump and a transfer attack, and gradient-masking diagnostics.")
    order = 30
    params = {
        "n_images": Param(int, 0, "images to attack", low=0, high=100_000, budget=(32, 128, 512)),
        "steps": Param(int, 0, "PGD steps", low=0, high=10_000, budget=(5, 10, 40)),
        "restarts": Param(int, 0, "PGD random restarts", low=0, high=100, budget=(1, 1, 3)),
        "eps_linf": _eps_param("1/255,2/255,4/255,8/255,16/255", "L-inf eps grid in [0, 1] pixel units", "linf"),
        "eps_l2": _eps_param("0.1,0.25,0.5,1.0", "L2 eps grid (norm of the perturbation over all pixels)", "l2"),
        "reference_eps": _eps_param("4/255", "L-inf eps at which robust accuracy is compared between groups", "linf"),
        "n_blackbox": Param(int, 0, "images for the black-box attacks", low=0, high=100_000, budget=(8, 16, 64)),
        "max_queries": Param(int, 0, "query budget per image of each query attack", low=0, high=1_000_000,
                             budget=(100, 300, 2000)),
        "blackbox": Param(bool, True, "run the black-box attacks (Square, HopSkipJump, transfer)"),
        "min_group_size": Param(int, 30, "groups smaller than this are flagged insufficient_data and left out of the gaps", low=1),
    }
    internal_sizes = {"pool": (64, 256, 2048), "epochs": (2, 4, 10)}
    """The transfer attack's substitute: images it is trained on, and its epochs."""
    metric_names = ("robust_accuracy_difference", "robust_accuracy_ratio", "worst_group_robust_accuracy")
    overall_metric_names = ("clean_accuracy", "robust_accuracy", "attack_success_rate", "median_minimal_eps", "reliable",
                            "n_masking_flags")

    def _grids(self) -> tuple[dict[str, list[float]], float]:
        """The eps grids (the L-inf one with the reference eps added) and the reference eps."""
        cfg = self.config
        grids = {"linf": parse_eps(cfg["eps_linf"], "linf"), "l2": parse_eps(cfg["eps_l2"], "l2")}
        ref = parse_eps(cfg["reference_eps"], "linf")[0]
        grids["linf"] = sorted(set(grids["linf"]) | {ref})
        return grids, ref

    def plan(self, ctx: PlanContext | CheckContext) -> PassPlan:
        """Upper bounds: every attacked image assumed classified correctly (a wrong one is not attacked),
        every bisection round run on all of them, each query attack spending its whole budget (Square
        stops at the first success, so it usually spends far less)."""
        from auditor.attacks import gallery as gallery_  # imported when run: keeps `auditor checks` fast

        size, (grids, _) = self.at_budget(ctx.budget), self._grids()
        n = min(size["n_images"], ctx.n_rows)
        steps, restarts = size["steps"], size["restarts"]
        nd = min(N_DIAGNOSE, n)
        f, b = 3 * nd, nd  # gradient health (forward + backward), determinism (2 forwards)
        for eps in grids.values():
            f += 2 * (1 + n) + len(eps) * n * (2 + restarts * (steps + 1))  # fgsm and pgd curves, each with a clean pass
            b += len(eps) * n * (1 + restarts * steps)
        eps_max = min(1.0, 2 * grids["linf"][-1])
        rounds = 1 + max(0, math.ceil(math.log2(eps_max / MIN_EPS_TOL)))
        f += 1 + n + rounds * n * (steps + 1)
        b += rounds * n * steps
        for m in (min(N_DIAGNOSE, n), min(gallery_.N_SHOWN, n)):  # the unbounded attack; the gallery's
            f += 1 + m * (steps + 2)
            b += m * steps
        if self.config["blackbox"]:
            nb = min(size["n_blackbox"], n)
            pool = min(size["pool"], ctx.n_rows - n)
            f += 2 * nb * size["max_queries"] + (pool + 2 * nb if pool >= 8 else 0)
        return PassPlan(f, b, "upper bound: attacks stop early on images already fooled or misclassified")

    def run(self, ctx: CheckContext) -> CheckResult:
        import torch  # imported when run: keeps `auditor checks` fast
        from auditor.attacks import gallery as gallery_, masking
        from auditor.attacks.whitebox import minimal_eps, pgd, robust_accuracy_curve
        from auditor.checks.sampling import group_balanced_rows, group_labels, load_rows

        start = time.perf_counter()
        cfg = self.config
        size = self.at_budget(ctx.budget)
        grids, ref = self._grids()
        pred = ctx.predictions
        # balanced over every audited attribute's groups, so a group the probe has enough of is never too
        # thin in the sample for its robust accuracy (128 images over 4 groups: 32 each)
        rows = group_balanced_rows(group_labels(ctx), len(pred), size["n_images"], ctx.seed, "attacks")
        x, rows = load_rows(ctx, rows)
        x = x.to(ctx.device)
        y = torch.as_tensor(pred.y_true[rows], dtype=torch.long, device=ctx.device)
        model = ctx.model.module
        bs = ctx.batch_size
        result = CheckResult(params={**cfg, **size, "eps_linf": grids["linf"], "eps_l2": grids["l2"], "reference_eps": ref,
                                     "n_images": int(len(rows))})
        clean = pred.y_pred[rows] == pred.y_true[rows]

        nd = min(N_DIAGNOSE, len(rows))
        grads = masking.gradient_health(model, x[:nd], y[:nd], batch_size=bs)
        determinism = masking.output_determinism(model, x[:nd], batch_size=bs)
        result.count(grads, determinism)

        overall: dict[str, Any] = {"clean_accuracy": _share(clean), "settings": []}
        curves: dict[str, Any] = {}
        correct_ref = None
        min_eps = None
        unbounded = None
        if grads["differentiable"]:
            for norm in ("linf", "l2"):
                curves[norm] = {"eps": grids[norm]}
                for attack in ("fgsm", "pgd"):
                    c = robust_accuracy_curve(model, x, y, grids[norm], attack=attack, norm=norm, steps=size["steps"],
                                              restarts=size["restarts"], seed=ctx.seed, batch_size=bs,
                                              progress=_part(ctx, f"{self.name}: {attack} {norm}"), cancel=ctx.cancel)
                    result.count(c)
                    curves[norm][attack] = c.correct
                    overall["settings"].append(c.settings)
            correct_ref = curves["linf"]["pgd"][grids["linf"].index(ref)]
            me = minimal_eps(model, x, y, norm="linf", eps_max=min(1.0, 2 * grids["linf"][-1]), tol=MIN_EPS_TOL,
                             steps=size["steps"], seed=ctx.seed, batch_size=bs,
                             progress=_part(ctx, f"{self.name}: minimal eps"), cancel=ctx.cancel)
            result.count(me)
            overall["settings"].append(me.settings)
            min_eps = me.eps
            nu = min(N_DIAGNOSE, len(rows))
            unb = pgd(model, x[:nu], y[:nu], 1.0, norm="linf", steps=size["steps"], seed=ctx.seed, batch_size=bs)
            result.count(unb)
            unbounded = 1.0 - unb.success_rate
        else:
            overall["not_differentiable"] = (f"the model returns no input gradient ({grads.get('reason')}); the white-box "
                                             "attacks were not run, only the black-box ones")

        blackbox, bb_idx = self._blackbox(ctx, model, x, y, rows, ref, size, result) if cfg["blackbox"] else ({}, None)

        flags = self._flags(curves, grids, clean, blackbox, bb_idx, unbounded, grads, determinism, ref)
        if correct_ref is not None:
            overall["robust_accuracy"] = _share(correct_ref)
            overall["attack_success_rate"] = _share(~correct_ref[clean]) if clean.any() else _none("no image was classified correctly")
        else:
            overall["robust_accuracy"] = _none("no white-box attack could run (no input gradient)")
            overall["attack_success_rate"] = _none("no white-box attack could run (no input gradient)")
        overall["median_minimal_eps"] = _median(min_eps, clean, ctx.seed)
        overall["reliable"] = metric(int(masking.reliable(flags)))
        overall["n_masking_flags"] = metric(len(flags))
        overall["masking"] = {"reliable": masking.reliable(flags), "summary": masking.summary(flags),
                              "flags": [f.as_dict() for f in flags], "gradients": grads, "determinism": determinism,
                              "unbounded_accuracy": boot.rounded(unbounded)}
        overall["curves"] = {n: {"eps": c["eps"], **{a: boot.rounded_list(c[a].mean(axis=1)) for a in ("fgsm", "pgd") if a in c}}
                             for n, c in curves.items()}
        overall["blackbox"] = blackbox
        result.metrics["overall"] = overall
        if correct_ref is not None:
            self._groups(ctx, rows, y.cpu().numpy(), correct_ref, curves, min_eps, clean, result)
            fooled = np.flatnonzero(clean & ~correct_ref)[: gallery_.N_SHOWN]
            if len(fooled):
                adv = pgd(model, x[fooled], y[fooled], ref, norm="linf", steps=size["steps"], seed=ctx.seed, batch_size=bs)
                result.count(adv)
                try:
                    result.figures["gallery"] = gallery_.gallery(model, x[fooled], adv.x_adv, ref, ctx.classes, _eps_text(ref))
                except ImportError as exc:  # matplotlib missing: the tables carry the numbers
                    log.warning("attacks gallery skipped: %s", exc)
        result.seconds = time.perf_counter() - start
        return result

    def _blackbox(self, ctx: CheckContext, model: Any, x: torch.Tensor, y: torch.Tensor, rows: np.ndarray, ref: float,
                  size: dict[str, int], result: CheckResult) -> tuple[dict[str, Any], np.ndarray]:
        """Square (L-inf at the reference eps), HopSkipJump (L2, minimal) and transfer on a subsample."""
        from auditor.attacks.blackbox import CountingOracle, hopskipjump, square_attack  # imported when run: keeps `auditor checks` fast
        from auditor.attacks.transfer import transfer_attack
        from auditor.checks.sampling import load_rows, random_rows

        idx = np.arange(min(size["n_blackbox"], len(rows)))
        xb, yb = x[idx].cpu(), y[idx].cpu()
        out: dict[str, Any] = {}
        oracle = CountingOracle(model, batch_size=ctx.batch_size)
        ctx.report(f"{self.name}: square", 0, len(idx))
        try:
            sq = square_attack(oracle, xb, yb, ref, norm="linf", max_queries=size["max_queries"], seed=ctx.seed,
                               batch_size=ctx.batch_size, progress=_part(ctx, f"{self.name}: square"), cancel=ctx.cancel)
            out["square"] = _bb_entry(sq.success, sq.queries, sq.settings, ref, "linf")
        except UsageError as exc:  # e.g. ART's Square needs square images of at least 14 px
            out["square"] = {"reason": f"not run: {exc}"}
        l2_ref = self._l2_reference()
        ctx.report(f"{self.name}: hopskipjump", 0, len(idx))
        try:
            hsj = hopskipjump(oracle, xb, yb, norm="l2", max_queries=size["max_queries"], eps=l2_ref, seed=ctx.seed,
                              progress=_part(ctx, f"{self.name}: hopskipjump"), cancel=ctx.cancel)
            out["hopskipjump"] = {**_bb_entry(hsj.success, hsj.queries, hsj.settings, l2_ref, "l2"),
                                  "median_norm": boot.rounded(float(np.median(np.asarray(hsj.norms)))) if len(hsj.norms) else None}
        except UsageError as exc:
            out["hopskipjump"] = {"reason": f"not run: {exc}"}
        pool_rows = random_rows(len(ctx.predictions), size["pool"] + len(rows), ctx.seed, "attacks-pool")
        pool_rows = np.setdiff1d(pool_rows, rows)[: size["pool"]]
        if len(pool_rows) >= 8:
            xp, _ = load_rows(ctx, pool_rows)
            tr = transfer_attack(oracle, xp, xb, yb, ref, norm="linf", epochs=size["epochs"], seed=ctx.seed,
                                 batch_size=ctx.batch_size, progress=lambda part, d, t: ctx.report(f"{self.name}: {part}", d, t),
                                 cancel=ctx.cancel)
            out["transfer"] = {**_bb_entry(tr.success, tr.queries, tr.settings, ref, "linf"),
                               "substitute_agreement": boot.rounded(tr.substitute_agreement), "n_pool": int(len(pool_rows))}
        else:
            out["transfer"] = {"reason": "the probe has too few images beyond the attacked ones to train a substitute"}
        result.forward_passes += oracle.queries
        out["queries"] = int(oracle.queries)
        return out, idx

    def _l2_reference(self) -> float:
        grid = parse_eps(self.config["eps_l2"], "l2", "eps_l2")
        return grid[len(grid) // 2]

    def _flags(self, curves: dict[str, Any], grids: dict[str, list[float]], clean: np.ndarray, blackbox: dict[str, Any],
               bb_idx: np.ndarray | None, unbounded: float | None, grads: dict[str, Any], determinism: dict[str, Any],
               ref: float) -> list[masking.Flag]:
        """The masking flags, each judged on the images both sides of a comparison were run on."""
        from auditor.attacks import masking  # imported when run: keeps `auditor checks` fast

        n = max(1, len(clean))
        tol = max(0.02, 0.5 / math.sqrt(n))
        acc = {a: list(curves["linf"][a].mean(axis=1)) for a in ("fgsm", "pgd")} if "linf" in curves else {}
        flags = masking.diagnose(eps=grids["linf"] if acc else [], accuracy_by_eps=acc, clean_accuracy=float(clean.mean()),
                                 unbounded_accuracy=unbounded, gradients=grads, determinism=determinism, tol=tol)
        if acc and bb_idx is not None and len(bb_idx):
            sub = {"pgd": list(curves["linf"]["pgd"][:, bb_idx].mean(axis=1))}
            bb = {name: (e["eps"], e["robust_accuracy"]) for name, e in blackbox.items()
                  if isinstance(e, dict) and e.get("norm") == "linf" and e.get("robust_accuracy") is not None}
            tol_bb = max(0.02, 0.5 / math.sqrt(len(bb_idx)))
            more = masking.diagnose(eps=grids["linf"], accuracy_by_eps=sub, clean_accuracy=float(clean[bb_idx].mean()),
                                    blackbox_accuracy=bb, tol=tol_bb)
            flags += [f for f in more if f.id == "blackbox_beats_whitebox"]
        return flags

    def _groups(self, ctx: CheckContext, rows: np.ndarray, y: np.ndarray, correct_ref: np.ndarray, curves: dict[str, Any],
                min_eps: np.ndarray | None, clean: np.ndarray, result: CheckResult) -> None:
        """Robust accuracy per group and intersection at the reference eps (group-metrics intervals and
        gaps), each group's curves, and its median minimal eps."""
        k = len(ctx.classes)
        adv = np.where(correct_ref, y, (y + 1) % k)  # only whether the answer is right is read
        per = robust_accuracy_by_group(ctx, rows, np.eye(k)[adv], n_boot=N_BOOT, min_group_size=self.config["min_group_size"])
        table = ctx.probe.table.loc[ctx.predictions.index[rows]].reset_index(drop=True)
        for scope, entry in per["scopes"].items():
            for m in GAP_METRICS:  # a gap the sample could not measure: the sample is the cause, a larger one the cure
                if isinstance(entry.get(m), dict) and entry[m].get("value") is None and entry[m].get("reason"):
                    entry[m]["reason"] += (f" among the {len(rows)} attacked images; raise the sample with "
                                           "--param attacks.n_images=N or a larger --budget")
            result.metrics[scope] = {"scope": entry.get("scope"), **({"reason": entry["reason"]} if "reason" in entry else {}),
                                     **{f"robust_{m}" if m != "worst_group_accuracy" else "worst_group_robust_accuracy": v
                                        for m, v in entry.items() if m in ("accuracy_difference", "accuracy_ratio",
                                                                          "worst_group_accuracy")}}
            attrs = (entry.get("scope") or {}).get("attributes") or [scope]
            labels = table[attrs].astype(str).agg(" & ".join, axis=1).to_numpy() if all(a in table for a in attrs) else None
            groups = {}
            for g, v in entry["groups"].items():
                sel = labels == g if labels is not None else np.zeros(len(rows), bool)
                right = sel & clean
                groups[g] = {"n": v["n"], "insufficient_data": v["insufficient_data"], "robust_accuracy": v["accuracy"],
                             "attack_success_rate": _share(~correct_ref[right]) if right.any()
                             else _none("no image of the group was classified correctly"),
                             "curves": {n: {a: boot.rounded_list(c[a][:, sel].mean(axis=1)) if sel.any() else None
                                            for a in ("fgsm", "pgd")} for n, c in curves.items()},
                             "median_minimal_eps": _median(min_eps[sel] if min_eps is not None else None, clean[sel], ctx.seed)}
            result.by_group[scope] = groups


def _part(ctx: CheckContext, stage: str) -> ProgressFn:
    """An attack's ``progress`` reported as ``stage`` of the check (its own stage name dropped)."""
    return lambda _attack_stage, done, total: ctx.report(stage, done, total)


def _bb_entry(success: Any, queries: int, settings: dict[str, Any], eps: float, norm: str) -> dict[str, Any]:
    s = np.asarray(success, dtype=bool)
    return {"norm": norm, "eps": eps, "n": int(s.size), "robust_accuracy": boot.rounded(1.0 - s.mean()) if s.size else None,
            "success_rate": boot.rounded(s.mean()) if s.size else None, "queries": int(queries), "settings": settings}


def _share(flags: np.ndarray) -> dict[str, Any]:
    """The share of True in a bool array with its Wilson score interval (it does not collapse at 0 or 1)."""
    return boot.share(flags)


def _median(eps: np.ndarray | None, clean: np.ndarray, seed: int) -> dict[str, Any]:
    """Median minimal eps over the images classified correctly (inf: not flipped within the grid's reach)."""
    if eps is None:
        return _none("no white-box attack could run")
    v = np.asarray(eps, dtype=float)[np.asarray(clean, bool)]
    if v.size == 0:
        return _none("no image was classified correctly")
    draws = np.median(v[np.random.default_rng(seed).integers(0, v.size, (N_BOOT, v.size))], axis=1)
    lo, hi = np.quantile(draws, [0.025, 0.975], method="inverted_cdf")  # no interpolation: inf stays inf
    return metric(boot.rounded(np.median(v)), [boot.rounded(lo), boot.rounded(hi)], n_not_flipped=int(np.isinf(v).sum()))


def _eps_text(eps: float) -> str:
    """``4/255`` when eps is a whole number of 255ths, else the number."""
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:g}"


def _none(reason: str) -> dict[str, Any]:
    return no_metric(reason)
