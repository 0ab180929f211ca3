"""Group metrics: per-group rates, calibration and disparities for every sensitive attribute and every
intersection of them, each with an interval (Wilson's score interval for a rate that is one proportion,
a percentile bootstrap for gaps, ratios, macro averages and calibration), and a test of whether each gap is real.

- Rates (`RATES`): accuracy, error rate, selection rate, TPR/FNR, FPR/TNR, precision, ECE and Brier.
  Binary models use the positive class; multi-class models average the one-vs-rest rates over the
  classes (macro) and also report each class's rates.
- Point estimates and bootstrap draws come from one code path: the confusion cells of each scope
  (`auditor.checks.bootstrap`) and calibration cells (`auditor.checks.calibration`). The numbers are
  tested equal to fairlearn's ``MetricFrame`` called on the raw rows.
- Disparities over the groups with at least ``min_group_size`` rows: difference (max - min), ratio
  (min / max), the largest distance to the scope's pooled value, demographic parity, the four-fifths
  rule, equalized odds, equal opportunity and worst-group accuracy, each naming the groups behind it.
- Practical floors (`significance.PRACTICAL_FLOORS`): each difference and ratio says whether it is
  large enough to matter (``practical``), so a tiny gap that a large probe makes significant is never
  headlined.
- Tests: each difference gets a permutation p-value (group labels permuted across rows, sizes
  kept; `auditor.checks.significance`), each group an exact test against the rest of its scope;
  p-values are adjusted (Holm or Benjamini-Hochberg) within each of the two families across all
  scopes and metrics. Each difference gets a power estimate: how many images would detect it.
"""
from __future__ import annotations

import logging
import math
import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from auditor.checks import bootstrap as boot
from auditor.checks import significance as sig
from auditor.checks._group_tests import CALIBRATION_PERMUTATIONS, TWIN as _TWIN, adjust, affordable, copy_twins
from auditor.checks._group_tests import rounded_p as _p
from auditor.checks.base import Check, CheckContext, CheckResult, Param
from auditor.checks.calibration import CalibrationCells, calibration_cells, calibration_from_counts
from auditor.checks.registry import register_check
from auditor.checks.scopes import Scope, build_scopes
from auditor.results import metric

__all__ = ["GroupMetrics", "RATES", "DISPARITY_METRICS", "TESTED_RATES"]

log = logging.getLogger(__name__)

CALIBRATION: tuple[str, ...] = ("ece", "brier")
RATES: tuple[str, ...] = boot.COUNT_RATES + CALIBRATION
TESTED_RATES: tuple[str, ...] = ("accuracy", "selection_rate", "tpr", "fpr", "precision")
"""Rates with a per-group exact test (their complements share the p-value)."""
FOUR_FIFTHS = 0.8
DISPARITY_METRICS: tuple[str, ...] = tuple(
    f"{m}_{kind}" for m in RATES for kind in ("difference", "ratio", "max_abs_difference_to_overall")
) + (
    "demographic_parity_difference", "demographic_parity_ratio", "four_fifths_violations",
    "equalized_odds_difference", "equalized_odds_ratio", "equal_opportunity_difference", "equal_opportunity_ratio",
    "worst_group_accuracy", "n_groups", "n_eligible", "n_excluded",
)


def _num(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def _value(x: Any, ci: list[float] | None = None, **fields: Any) -> dict[str, Any]:
    """The metric entry of ``x`` (rounded; None when not finite) with its interval and ``fields``."""
    return metric(_num(x), ci, **fields)


def _missing(reason: str, **fields: Any) -> dict[str, Any]:
    """The entry of a gap that cannot be measured: no value, no groups, and why."""
    return metric(None, groups=[], reason=reason, **fields)


@dataclass
class _Stats:
    """Point values ``(G,)`` and bootstrap draws ``(B, G)`` of every rate in one scope."""

    values: dict[str, np.ndarray]
    draws: dict[str, np.ndarray] | None
    pooled: dict[str, float]
    pooled_draws: dict[str, np.ndarray] | None
    per_class: dict[str, np.ndarray] | None
    per_class_draws: dict[str, np.ndarray] | None
    props: dict[str, tuple[np.ndarray, np.ndarray]]
    """(successes, trials) ``(G,)`` of each rate that is one proportion: its interval is Wilson's."""
    per_class_props: dict[str, tuple[np.ndarray, np.ndarray]] | None
    """The same per class ``(G, K)`` for multi-class models (each one-vs-rest rate is one proportion)."""


def _rng(seed: int, scope: str, purpose: int) -> np.random.Generator:
    """A generator per scope and purpose, fixed by the audit seed and the scope's name."""
    return np.random.default_rng([seed, zlib.crc32(scope.encode()), purpose])


class _Interval:
    """Intervals at one level: percentile bootstrap of draws (gaps, ratios, macro means, calibration), and
    Wilson's score interval for a rate that is one proportion (it does not collapse at 0 or 1)."""

    def __init__(self, level: float, on: bool = True) -> None:
        self.level, self.on = level, on

    def __call__(self, draws: np.ndarray | None) -> list[float] | None:
        return None if draws is None else boot.interval(draws, self.level)

    def rate(self, props: dict[str, tuple[np.ndarray, np.ndarray]] | None, m: str, at: Any,
             draws: np.ndarray | None) -> list[float] | None:
        """Rate ``m`` at index ``at``: Wilson when it is one proportion, else the bootstrap of ``draws``."""
        if not self.on:
            return None
        if props is not None and m in props:
            return boot.wilson_ci(props[m][0][at], props[m][1][at], self.level)
        return self(draws)


@register_check
class GroupMetrics(Check):
    """Per-group rates and calibration, disparities, intervals and tests for attributes and intersections."""

    name = "group_metrics"
    description = ("Accuracy, error, selection, TPR/FNR, FPR/TNR, precision, ECE and Brier per group and intersection, "
                   "with disparities, bootstrap intervals, corrected tests and power estimates.")
    order = 10
    params = {
        "min_group_size": Param(int, 30, "groups smaller than this are flagged insufficient_data and left out of disparities", low=1),
        "n_boot": Param(int, 1000, "bootstrap resamples for the intervals (0: no intervals)", low=0, high=100_000),
        "confidence": Param(float, 0.95, "confidence level of the intervals", low=0.5, high=0.999),
        "n_perm": Param(int, 10_000, "permutations for the test of each gap (0: no tests)", low=0, high=1_000_000),
        "correction": Param(str, "holm", "multiple-testing correction across scopes, groups and metrics", choices=("holm", "bh")),
        "alpha": Param(float, 0.05, "significance level of the corrected tests and of the power estimates", low=1e-6, high=0.5),
        "power": Param(float, 0.8, "power the sample-size estimates aim for", low=0.5, high=0.999),
        "ece_bins": Param(int, 15, "equal-width confidence bins of the expected calibration error", low=2, high=100),
        "max_intersection_order": Param(int, 3, "largest number of attributes crossed in an intersection (1: none)", low=1, high=4),
    }
    metric_names = RATES + DISPARITY_METRICS + ("n",)
    overall_metric_names = RATES + ("n",)

    def run(self, ctx: CheckContext) -> CheckResult:
        start = time.perf_counter()
        cfg = self.config
        pred = ctx.predictions
        k = len(ctx.classes)
        positive = ctx.positive_class if k == 2 else None
        probs = pred.probs
        table = ctx.probe.table.loc[pred.index].reset_index(drop=True)
        overall, scopes, empty = build_scopes(table, list(ctx.attributes), cfg["max_intersection_order"])
        result = CheckResult(params={**cfg, "positive_class": ctx.classes[positive] if positive is not None else None,
                                     "averaging": "binary" if positive is not None else "macro one-vs-rest",
                                     "interval": "Wilson score interval for a rate that is one proportion; percentile bootstrap (multinomial resampling of confusion cells) for the rest; a gap's interval follows its pair of groups",
                                     "tests": "permutation test of each max-min gap; Fisher exact test of each group against the rest",
                                     "practical_floors": sig.floors_text()})
        ci = _Interval(cfg["confidence"], bool(cfg["n_boot"]))
        group_p: list[tuple[list[dict[str, Any]], float]] = []
        gap_p: list[tuple[list[dict[str, Any]], float]] = []

        stats = self._stats(overall, pred.y_true, pred.y_pred, probs, k, positive, ctx.seed)
        result.metrics["overall"] = {"n": len(pred), **{m: _value(stats.values[m][0], ci.rate(stats.props, m, 0, _col(stats.draws, m, 0))) for m in RATES}}
        if stats.per_class is not None:
            result.metrics["overall"]["per_class"] = self._per_class(stats, 0, ctx.classes, ci)

        for attr in empty:
            result.metrics[attr] = {"reason": f"no sample has a value for {attr}",
                                    "scope": {"kind": "attribute", "attributes": [attr]}}
            result.by_group[attr] = {}
        total = len(scopes)
        for done, scope in enumerate(scopes):
            ctx.report(self.name, done, total)
            y_t, y_p = pred.y_true[scope.known], pred.y_pred[scope.known]
            st = self._stats(scope, y_t, y_p, probs[scope.known], k, positive, ctx.seed)
            cells = boot.confusion_cells(y_t, y_p, scope.codes, scope.n_groups, k)
            n = cells.sum(axis=(1, 2))
            eligible = n >= cfg["min_group_size"]
            result.by_group[scope.name] = self._by_group(scope, st, cells, n, eligible, positive, ctx.classes, ci, group_p)
            metrics = self._disparities(scope, st, n, eligible, ci)
            if cfg["n_perm"] and eligible.sum() >= 2:
                self._gap_tests(scope, metrics, cells[eligible], probs[scope.known], y_t, positive, eligible, ctx.seed, gap_p)
            self._power(metrics, cells, n, scope, positive)
            result.metrics[scope.name] = metrics
        ctx.report(self.name, total, total)
        adjust(group_p, cfg["correction"], cfg["alpha"])
        adjust(gap_p, cfg["correction"], cfg["alpha"])
        copy_twins(result.by_group)
        result.seconds = time.perf_counter() - start
        return result

    # -- point values and bootstrap draws -------------------------------------------------------------

    def _stats(self, scope: Scope, y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray, k: int,
               positive: int | None, seed: int) -> _Stats:
        cells = boot.confusion_cells(y_true, y_pred, scope.codes, scope.n_groups, k)
        cal = calibration_cells(probs, y_true, scope.codes, scope.n_groups, self.config["ece_bins"], positive)
        multi = positive is None
        point = boot.rates_from_cells(cells, positive, per_class=multi)
        values = {m: point[m] for m in boot.COUNT_RATES} | calibration_from_counts(cal.counts, cal)
        pooled_rates = boot.rates_from_cells(cells.sum(axis=0)[None], positive)
        pooled = {m: float(pooled_rates[m][0]) for m in boot.COUNT_RATES}
        pooled |= {m: float(v[0]) for m, v in calibration_from_counts(cal.counts.sum(axis=0)[None], _pool(cal)).items()}
        draws = pooled_draws = pc_draws = None
        n_boot = self.config["n_boot"]
        if n_boot:
            res = boot.resample_cells(cells, n_boot, _rng(seed, scope.name, 1))
            r = boot.rates_from_cells(res, positive, per_class=multi)
            res_cal = boot.resample_cells(cal.counts, n_boot, _rng(seed, scope.name, 2))
            draws = {m: r[m] for m in boot.COUNT_RATES} | calibration_from_counts(res_cal, cal)
            pr = boot.rates_from_cells(res.sum(axis=1)[:, None], positive)
            pooled_draws = {m: pr[m][:, 0] for m in boot.COUNT_RATES}
            pooled_draws |= {m: v[:, 0] for m, v in calibration_from_counts(res_cal.sum(axis=1)[:, None], _pool(cal)).items()}
            pc_draws = r.get("per_class")
        props = boot.proportion_counts(cells, positive)
        pc_props = None
        if multi:  # each class's one-vs-rest rates, stacked over the classes: (G, K)
            by_class = [boot.proportion_counts(cells, c) for c in range(k)]
            pc_props = {m: (np.stack([b[m][0] for b in by_class], axis=-1), np.stack([b[m][1] for b in by_class], axis=-1))
                        for m in boot.ONE_VS_REST}
        return _Stats(values, draws, pooled, pooled_draws, point.get("per_class"), pc_draws, props, pc_props)

    def _per_class(self, st: _Stats, gi: int, classes: list[str], ci: _Interval) -> dict[str, Any]:
        assert st.per_class is not None
        return {
            cls: {m: _value(st.per_class[m][gi, ki], ci.rate(st.per_class_props, m, (gi, ki),
                                                           None if st.per_class_draws is None else st.per_class_draws[m][:, gi, ki]))
                  for m in boot.ONE_VS_REST}
            for ki, cls in enumerate(classes)
        }

    # -- per group ------------------------------------------------------------------------------------

    def _by_group(self, scope: Scope, st: _Stats, cells: np.ndarray, n: np.ndarray, eligible: np.ndarray,
                  positive: int | None, classes: list[str], ci: _Interval,
                  group_p: list[tuple[list[dict[str, Any]], float]]) -> dict[str, Any]:
        counts = boot.proportion_counts(cells, positive)
        p_values = {m: sig.group_vs_rest_exact(*counts[m]) for m in TESTED_RATES if m in counts}
        out: dict[str, Any] = {}
        for gi, g in enumerate(scope.groups):
            entry: dict[str, Any] = {"n": int(n[gi]), "insufficient_data": bool(not eligible[gi])}
            entry["n_needed"] = self._n_needed(int(n[gi]), gi, counts["accuracy"]) if not eligible[gi] else None
            if scope.members:
                entry["members"] = scope.members[g]
            for m in RATES:
                entry[m] = _value(st.values[m][gi], ci.rate(st.props, m, gi, _col(st.draws, m, gi)))
                entry[m].update(p_value=None, p_adjusted=None, significant=None)
                p = p_values.get(_TWIN.get(m, m))
                if p is not None and np.isfinite(p[gi]) and entry[m]["value"] is not None:
                    entry[m]["p_value"] = _p(p[gi])
                    if m not in _TWIN:
                        group_p.append(([entry[m]], float(p[gi])))
            entry["vs_overall"] = {m: self._vs(st.values[m][gi], st.pooled[m]) for m in RATES}
            if st.per_class is not None:
                entry["per_class"] = self._per_class(st, gi, classes, ci)
            out[g] = entry
        return out

    @staticmethod
    def _vs(v: float, pooled: float) -> dict[str, float | None]:
        if not (np.isfinite(v) and np.isfinite(pooled)):
            return {"difference": None, "ratio": None}
        return {"difference": _num(v - pooled), "ratio": _num(v / pooled) if pooled > 0 else None}

    def _n_needed(self, n: int, gi: int, acc: tuple[np.ndarray, np.ndarray]) -> int:
        """Images a small group still needs: to reach the minimum size, and to detect its accuracy gap
        to the rest of its scope at the configured power (when there is a gap)."""
        need = self.config["min_group_size"]
        success, trials = acc
        rest_t = trials.sum() - trials[gi]
        if trials[gi] > 0 and rest_t > 0:
            p1, p2 = success[gi] / trials[gi], (success.sum() - success[gi]) / rest_t
            req = sig.two_proportion_n(float(p1), float(p2), self.config["alpha"], self.config["power"],
                                       ratio=float(rest_t) / max(n, 1))
            if req is not None:
                need = max(need, req)
        return max(0, int(need) - n)

    # -- disparities ----------------------------------------------------------------------------------

    def _disparities(self, scope: Scope, st: _Stats, n: np.ndarray, eligible: np.ndarray, ci: _Interval) -> dict[str, Any]:
        min_n = self.config["min_group_size"]
        pair_draws: dict[str, dict[str, np.ndarray]] = {}
        names = np.array(scope.groups, dtype=object)
        excluded = [str(g) for g in names[~eligible]]
        out: dict[str, Any] = {"scope": {"kind": scope.kind, "attributes": list(scope.attributes)},
                               "n_groups": scope.n_groups, "n_eligible": int(eligible.sum()),
                               "n_excluded": int((~eligible).sum())}
        for m in RATES:
            vals = st.values[m][eligible]
            ok = np.isfinite(vals)
            if ok.sum() < 2:
                reason = f"fewer than two groups with at least {min_n} samples and a defined {m}"
                for kind in ("difference", "ratio", "max_abs_difference_to_overall"):
                    out[f"{m}_{kind}"] = _missing(reason, excluded_groups=excluded)
                continue
            grp = names[eligible]
            lo_i, hi_i = int(np.nanargmin(vals)), int(np.nanargmax(vals))
            if lo_i == hi_i:  # every group equal: name two different groups
                lo_i, hi_i = [int(i) for i in np.flatnonzero(ok)[[0, -1]]]
            lo, hi = float(vals[lo_i]), float(vals[hi_i])
            pair = [str(grp[lo_i]), str(grp[hi_i])]
            ratio = lo / hi if hi > 0 else (1.0 if lo == hi else None)
            diff_d = ratio_d = far_d = None
            if st.draws is not None and st.pooled_draws is not None:  # the same groups in every resample
                d = st.draws[m][:, eligible]
                diff_d, ratio_d = d[:, hi_i] - d[:, lo_i], boot.ratio_of(d[:, lo_i], d[:, hi_i])
                pair_draws[m] = {"difference": diff_d, "ratio": ratio_d}
            out[f"{m}_difference"] = _value(hi - lo, ci(diff_d), groups=pair, excluded_groups=excluded, p_value=None,
                                            p_adjusted=None, significant=None, practical=sig.clears_floor(m, hi - lo),
                                            power=None)
            out[f"{m}_ratio"] = _value(ratio, ci(ratio_d), groups=pair, excluded_groups=excluded,
                                       practical=sig.clears_floor(m, hi - lo, ratio))
            dist = np.abs(vals - st.pooled[m])
            far = int(np.nanargmax(dist))
            if st.draws is not None and st.pooled_draws is not None:
                far_d = np.abs(st.draws[m][:, eligible][:, far] - st.pooled_draws[m])
            out[f"{m}_max_abs_difference_to_overall"] = _value(dist[far], ci(far_d), groups=[str(grp[far])],
                                                               excluded_groups=excluded)
        out["demographic_parity_difference"] = dict(out["selection_rate_difference"])
        out["demographic_parity_ratio"] = dict(out["selection_rate_ratio"])
        out["equal_opportunity_difference"] = dict(out["tpr_difference"])
        out["equal_opportunity_ratio"] = dict(out["tpr_ratio"])
        out["four_fifths_violations"] = self._four_fifths(st.values["selection_rate"], names, eligible, excluded)
        out["equalized_odds_difference"] = self._equalized_odds(out, pair_draws, ci, "difference", max)
        out["equalized_odds_ratio"] = self._equalized_odds(out, pair_draws, ci, "ratio", min)
        acc = st.values["accuracy"][eligible]
        if np.isfinite(acc).any():
            worst = int(np.nanargmin(acc))
            w_draws = st.draws["accuracy"][:, eligible][:, worst] if st.draws is not None else None
            w_ci = ci.rate(st.props, "accuracy", np.flatnonzero(eligible)[worst], w_draws)  # the group's own interval
            out["worst_group_accuracy"] = _value(acc[worst], w_ci, groups=[str(names[eligible][worst])],
                                                 excluded_groups=excluded)
        else:
            out["worst_group_accuracy"] = _missing(f"no group has at least {min_n} samples", excluded_groups=excluded)
        return out

    @staticmethod
    def _four_fifths(sel: np.ndarray, names: np.ndarray, eligible: np.ndarray, excluded: list[str]) -> dict[str, Any]:
        vals = sel[eligible]
        if not np.isfinite(vals).any():
            return _missing("no group is large enough", excluded_groups=excluded)
        top = float(np.nanmax(vals))
        low = [str(g) for g, v in zip(names[eligible], vals) if np.isfinite(v) and v < FOUR_FIFTHS * top]
        return metric(len(low), groups=low, excluded_groups=excluded,
                      rule=f"selection rate below {FOUR_FIFTHS} x the highest group's ({_num(top)})")

    @staticmethod
    def _equalized_odds(out: dict[str, Any], pair_draws: dict[str, dict[str, np.ndarray]], ci: _Interval, kind: str,
                        pick: Any) -> dict[str, Any]:
        """The larger TPR/FPR gap (or smaller ratio); its interval follows both pairs in every resample."""
        t, f = out[f"tpr_{kind}"], out[f"fpr_{kind}"]
        if t["value"] is None or f["value"] is None:
            return _missing("TPR or FPR gap undefined", excluded_groups=t.get("excluded_groups", []))
        chosen = t if pick(t["value"], f["value"]) == t["value"] else f
        draws = None
        if "tpr" in pair_draws and "fpr" in pair_draws:
            a, b = pair_draws["tpr"][kind], pair_draws["fpr"][kind]
            draws = np.fmax(a, b) if kind == "difference" else np.fmin(a, b)
        value = pick(t["value"], f["value"])
        entry = _value(value, ci(draws), groups=chosen["groups"], excluded_groups=chosen["excluded_groups"],
                       driven_by="tpr" if chosen is t else "fpr")
        if kind == "difference":
            entry.update(p_value=None, p_adjusted=None, significant=None)
        entry["practical"] = sig.clears_floor("equalized_odds", value) if kind == "difference" else chosen.get("practical")
        return entry

    # -- tests and power --------------------------------------------------------------------------------

    def _gap_tests(self, scope: Scope, metrics: dict[str, Any], cells: np.ndarray, probs: np.ndarray, y_true: np.ndarray,
                   positive: int | None, eligible: np.ndarray, seed: int, gap_p: list[tuple[list[dict[str, Any]], float]]) -> None:
        """Permutation p-value of each max-min gap over the eligible groups."""
        n_perm = affordable(self.config["n_perm"], cells)
        metrics["n_perm"] = n_perm
        null_cells = sig.permute_cells(cells, n_perm, _rng(seed, scope.name, 3))
        null = boot.rates_from_cells(null_cells, positive)
        spreads = {m: boot.disparity_draws(null[m])["difference"] for m in boot.COUNT_RATES}
        codes = scope.codes
        keep = eligible[codes]
        remap = np.cumsum(eligible) - 1
        cal = calibration_cells(probs[keep], y_true[keep], remap[codes[keep]], int(eligible.sum()), self.config["ece_bins"], positive)
        n_perm_cal = affordable(min(self.config["n_perm"], CALIBRATION_PERMUTATIONS), cal.counts)
        metrics["n_perm_calibration"] = n_perm_cal
        null_cal = calibration_from_counts(sig.permute_cells(cal.counts, n_perm_cal, _rng(seed, scope.name, 4)), _pool(cal))
        for m in CALIBRATION:
            spreads[m] = boot.disparity_draws(null_cal[m])["difference"]
        spreads["equalized_odds"] = np.fmax(spreads["tpr"], spreads["fpr"])
        for m, null_d in spreads.items():
            if m in _TWIN:
                continue
            entries = [metrics[f"{m}_difference"]]
            entries += [metrics[f"{t}_difference"] for t, twin in _TWIN.items() if twin == m]
            if m == "selection_rate":
                entries.append(metrics["demographic_parity_difference"])
            if m == "tpr":
                entries.append(metrics["equal_opportunity_difference"])
            p = sig.permutation_pvalue(entries[0]["value"], null_d)
            if p is not None:
                for e in entries:  # p_floor: no p-value below it is possible with these permutations
                    e["p_value"], e["p_floor"] = _p(p), _p(sig.permutation_floor(null_d))
                gap_p.append((entries, p))

    def _power(self, metrics: dict[str, Any], cells: np.ndarray, n: np.ndarray, scope: Scope, positive: int | None) -> None:
        """Achieved power and the images needed to detect each observed difference of a proportion."""
        counts = boot.proportion_counts(cells, positive)
        index = {g: i for i, g in enumerate(scope.groups)}
        alpha, target = self.config["alpha"], self.config["power"]
        for m in boot.COUNT_RATES:
            entry = metrics[f"{m}_difference"]
            if entry["value"] is None:
                continue
            if m not in counts:
                entry["power"] = {"achieved": None, "n_per_group_needed": None, "n_more": None,
                                  "reason": "estimated only for rates that are one proportion (not macro averages)"}
                continue
            succ, trials = counts[m]
            i, j = index[entry["groups"][0]], index[entry["groups"][1]]
            if trials[i] <= 0 or trials[j] <= 0:
                continue
            lo_v, hi_v = float(succ[i] / trials[i]), float(succ[j] / trials[j])
            achieved = sig.two_proportion_power(lo_v, hi_v, int(trials[i]), int(trials[j]), alpha)
            req = sig.two_proportion_n(lo_v, hi_v, alpha, target, ratio=float(trials[j] / trials[i]))
            power: dict[str, Any] = {"achieved": None if achieved is None else _num(achieved),
                                     "n_per_group_needed": None, "n_more": None}
            if req is not None:  # trials needed, scaled to images by each group's share of trials
                need_i = math.ceil(req * n[i] / trials[i])
                need_j = math.ceil(math.ceil(req * trials[j] / trials[i]) * n[j] / trials[j])
                power["n_per_group_needed"] = int(max(need_i, need_j))
                power["n_more"] = int(max(0, need_i - n[i]) + max(0, need_j - n[j]))
            entry["power"] = power


def _pool(cal: CalibrationCells) -> CalibrationCells:
    """Cells whose means are pooled over the groups (rows are exchangeable under the null)."""
    counts = cal.counts.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = (cal.counts * cal.mean_conf).sum(axis=0, keepdims=True) / np.maximum(counts, 1)
        brier = (cal.counts * cal.mean_brier).sum(axis=0, keepdims=True) / np.maximum(counts, 1)
    return CalibrationCells(counts, conf, brier)


def _col(draws: dict[str, np.ndarray] | None, m: str, gi: int) -> np.ndarray | None:
    return None if draws is None else draws[m][:, gi]
