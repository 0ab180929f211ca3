"""The explanations check's comparison of groups: the reference method's numbers on the group sample,
the difference between each attribute's groups (max - min of the group means) with a bootstrap
interval and a permutation test, Holm-adjusted over all the differences, and the findings."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.checks import bootstrap as boot
from auditor.checks._explanation_scores import (
    LEVEL, N_BOOT, area, count, faithfulness_curves, mean, perturbation_masks, subject_share,
)
from auditor.checks.base import CheckContext, CheckResult
from auditor.checks.significance import adjust_pvalues, permutation_floor, permutation_pvalue, significant
from auditor.explain import LABELS
from auditor.results import metric

if TYPE_CHECKING:
    from auditor.explain import attributions as attr

__all__ = ["N_PERM", "ALPHA", "NO_BOXES", "GROUP_METRICS", "group_sample", "scope_differences", "permuted_gaps",
           "finding", "findings", "by_group", "compared_groups"]

N_PERM = 1000
ALPHA = 0.05  # level of the permutation test of a group difference, Holm-adjusted over all the differences
NO_BOXES = "the probe has no subject boxes or masks, so attribution on the subject cannot be measured"
GROUP_METRICS = {"deletion_auc": "deletion_auc_difference", "insertion_auc": "insertion_auc_difference",
                 "subject_share": "subject_share_difference"}


def group_sample(ctx: CheckContext, model: Any, rows: np.ndarray, method: str, first: dict[str, np.ndarray],
                 settings: attr.Settings, layer: Any, size: dict[str, int], operator: str,
                 result: CheckResult) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The reference method's per-image deletion, insertion and subject share on ``n_group_images`` images:
    the ``rows`` already explained and further seeded rows, explained, scored and measured the same way."""
    import torch  # imported when run: keeps `auditor checks` fast
    from auditor.checks.sampling import group_balanced_rows, group_labels, load_rows, subject_masks
    from auditor.explain import attributions as attr

    pred = ctx.predictions
    # the rows already explained, then rows that even out every attribute's groups as far as the probe allows
    pool = group_balanced_rows(group_labels(ctx), len(pred), size["n_group_images"], ctx.seed, "explanations-groups",
                               start=rows)
    extra = pool[~np.isin(pool, rows)]
    if not len(extra):
        return first, rows
    images, extra = load_rows(ctx, extra)
    x = images.to(ctx.device)
    targets = torch.as_tensor(pred.y_pred[extra], dtype=torch.long, device=ctx.device)
    if method == "perturbation_mask":
        m = perturbation_masks(ctx, model, x, targets, size, operator, result)
    else:
        m = attr.attribute(model, method, x, targets, settings, layer=layer).numpy()
        count(result, method, len(extra), settings, tuple(x.shape[-2:]))
    d, ins = faithfulness_curves(ctx, model, x, targets, {method: m}, size["curve_steps"], operator, result,
                                 with_random=False)[method]
    share = subject_share(m, subject_masks(ctx, pred.index[extra], tuple(x.shape[-2:])))
    more = {"deletion_auc": area(d), "insertion_auc": area(ins), "subject_share": share}
    return {k: np.concatenate([first[k], more[k]]) for k in more}, np.concatenate([rows, extra])


def _labels_of(labels: np.ndarray) -> list[str]:
    return sorted({str(v) for v in labels if v is not None and v == v})


def scope_differences(labels: np.ndarray, values: dict[str, np.ndarray] | None, method: str | None, min_n: int,
                      has_subjects: bool, rng: np.random.Generator) -> dict[str, Any]:
    """The differences between an attribute's groups (max - min of the group means) for the reference method,
    with a bootstrap interval that resamples within each group and a permutation test (group labels shuffled
    across the images; one-sided: a gap at least this large by chance)."""
    out: dict[str, Any] = {"scope": {"kind": "attribute"}}
    names = _labels_of(labels)
    big = [g for g in names if sum(str(v) == g for v in labels) >= min_n]
    for name, key in GROUP_METRICS.items():
        entry = metric(None, method=method, lowest=None, highest=None, groups_compared=0, p_value=None,
                       p_adjusted=None, reason=None, significant=None)
        if values is None:
            entry["reason"] = "no attribution method could run"
        elif name == "subject_share" and not has_subjects:
            entry["reason"] = NO_BOXES
        else:
            means, draws, kept, pooled = [], [], [], []
            for g in big:
                v = values[name][np.array([str(x) == g for x in labels])]
                v = v[np.isfinite(v)]
                if v.size >= min_n:
                    kept.append(g)
                    means.append(v.mean())
                    draws.append(boot.mean_draws(v, rng, N_BOOT))
                    pooled.append(v)
            entry["groups_compared"] = len(kept)
            if len(kept) < 2:
                entry["reason"] = (f"fewer than two groups have {min_n} or more images (groups: "
                                   f"{', '.join(f'{g}' for g in names) or 'none'}) in the group sample; raise it with "
                                   "--param explanations.n_group_images=N or a larger --budget")
            else:
                lo, hi = int(np.argmin(means)), int(np.argmax(means))
                null = permuted_gaps(pooled, rng)
                entry.update(value=boot.rounded(means[hi] - means[lo]), lowest=kept[lo], highest=kept[hi],
                             ci=boot.interval(boot.disparity_draws(np.stack(draws, axis=1))["difference"], LEVEL),
                             p_value=boot.rounded(permutation_pvalue(means[hi] - means[lo], null)),
                             p_floor=boot.rounded(permutation_floor(null)))
        out[key] = entry
    return out


def permuted_gaps(values: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Max - min of the group means with the images' group labels shuffled, ``N_PERM`` times."""
    pooled = np.concatenate(values)
    sizes = np.array([len(v) for v in values])
    owner = np.repeat(np.arange(len(values)), sizes)
    shuffled = rng.permuted(np.broadcast_to(pooled, (N_PERM, pooled.size)), axis=1)
    sums = np.stack([shuffled[:, owner == g].sum(axis=1) for g in range(len(values))], axis=1)
    means = sums / sizes
    return means.max(axis=1) - means.min(axis=1)


def finding(attribute: str, name: str, entry: Any, min_difference: float) -> dict[str, Any] | None:
    """A finding when the difference is at least ``min_difference`` and its Holm-adjusted permutation p-value
    is below `ALPHA` (the bootstrap interval of a max - min gap sits above 0 almost always, so it cannot decide)."""
    if name == "scope" or not isinstance(entry, dict) or entry.get("value") is None or entry.get("p_adjusted") is None:
        return None
    if entry["value"] < min_difference or significant(entry["p_adjusted"], ALPHA) is not True:
        return None
    what = {"subject_share_difference": "share of attribution on the subject",
            "deletion_auc_difference": "deletion AUC (how fast removing the attributed pixels destroys the prediction)",
            "insertion_auc_difference": "insertion AUC (how fast the attributed pixels restore the prediction)"}[name]
    text = (f"By {attribute}, the {what} differs by {entry['value']:.2f} between {entry['highest']} (highest) and "
            f"{entry['lowest']} (lowest), 95% interval {entry['ci'][0]:.2f} to {entry['ci'][1]:.2f}, "
            f"permutation p {_p_text(entry)} (Holm), "
            f"under {LABELS.get(entry['method'], entry['method'])}: the model looks at different evidence for these groups.")
    return {"attribute": attribute, "metric": name, "method": entry["method"], "lowest": entry["lowest"],
            "highest": entry["highest"], "value": entry["value"], "ci": entry["ci"], "p_adjusted": entry["p_adjusted"],
            "text": text}


def _p_text(entry: dict[str, Any]) -> str:
    """"= 0.012", or "< 0.006" when the raw p-value is at the permutation floor (the adjusted one is then a bound)."""
    floor, raw = entry.get("p_floor"), entry.get("p_value")
    at_floor = floor is not None and raw is not None and raw <= floor * (1 + 1e-6)
    return f"{'<' if at_floor else '='} {entry['p_adjusted']:.3g}"


def findings(metrics: dict[str, Any], attributes: list[str], min_difference: float) -> list[dict[str, Any]]:
    """Holm-adjust the p-values of every attribute's differences together (each entry's ``p_adjusted``),
    then the findings among them, in attribute and metric order."""
    tested = [e for a in attributes for k, e in metrics[a].items() if k != "scope" and e["p_value"] is not None]
    for e, p in zip(tested, adjust_pvalues(np.array([e["p_value"] for e in tested], dtype=float), "holm")
                    if tested else []):
        e["p_adjusted"] = boot.rounded(p)
        e["significant"] = significant(e["p_adjusted"], ALPHA)  # the rule every check uses (what a policy clause copies)
    found = (finding(attribute, name, entry, min_difference)
             for attribute in attributes for name, entry in metrics[attribute].items())
    return [f for f in found if f]


def by_group(groups: dict[str, np.ndarray], per_image: dict[str, dict[str, np.ndarray]], min_n: int,
             rng: np.random.Generator) -> dict[str, Any]:
    """Per attribute and group: its images, whether it is too small, and every method's numbers over them."""
    out: dict[str, Any] = {}
    for attribute, labels in groups.items():
        per: dict[str, Any] = {}
        for g in _labels_of(labels):
            sel = np.array([str(v) == g for v in labels])
            per[g] = {"n": int(sel.sum()), "insufficient": bool(sel.sum() < min_n),
                      "methods": {m: {k: mean(v[sel], rng, NO_BOXES if k == "subject_share" else "no image")
                                      for k, v in vals.items()} for m, vals in per_image.items()}}
        out[attribute] = per
    return out


def compared_groups(per: dict[str, Any], labels: np.ndarray, values: dict[str, np.ndarray], method: str, min_n: int,
                    rng: np.random.Generator) -> None:
    """Set each group's ``n`` and ``insufficient`` by the images the groups are compared on, and the
    reference method's numbers over them; ``n_all_methods`` keeps the count every method ran on."""
    for g in _labels_of(labels):
        sel = np.array([str(v) == g for v in labels])
        entry = per.setdefault(g, {"n": 0, "insufficient": True, "methods": {}})
        entry["n_all_methods"] = entry["n"]
        entry["n"], entry["insufficient"] = int(sel.sum()), bool(sel.sum() < min_n)
        entry["methods"][method] = {k: mean(v[sel], rng, NO_BOXES if k == "subject_share" else "no image")
                                    for k, v in values.items()}
