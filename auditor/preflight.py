"""The preflight: verify what the audit assumes about a model before any check runs.

What a model's files do not say is assumed (README "What the model's file does not say"): the class order (a coded probe
format's codes, else the probe's labels sorted), no normalisation, and the probe's image size.
Each assumption is tested against its alternatives on the probe itself:

- **class order**: the balanced agreement (mean per-class recall) of the model's predictions with
  the labels under the assumed order, against the best other assignment of classes to outputs
  (`scipy.optimize.linear_sum_assignment` on the recall matrix; for two classes, the swap);
- **normalisation and input size**: the same, on a stratified sample of the probe, for no
  normalisation vs ImageNet's mean/std and the probe's size vs 224 px, each with its best order.
  The probe's size is its most common image size (`probes.loader.probe_image_size`; never the
  first image's), and every image of another size is resized keeping its aspect ratio.

An alternative *contradicts* the assumption when it is better beyond doubt: balanced agreement at
least `MARGIN` higher and an exact one-sided sign test on the images where the two disagree with
p < `ALPHA` (README "How the preflight decides"). The audit then stops (exit 2) naming the flags
to pass. The assumption is *verified* when it beats every alternative by the same rule, and
*undecided* otherwise (a model near chance under every option), which is recorded and shown on
page 1 of the report. Declared facts are never overruled: a contradiction is only a warning.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import binomtest

from auditor.errors import ModelLoadError
from auditor.models import IMAGENET_MEAN, IMAGENET_STD
from probes import make_loader
from probes.loader import image_size_basis
from probes.base import CLASS_ORDER_SOURCES

__all__ = ["MARGIN", "ALPHA", "SAMPLE", "OrderTest", "verify_class_order", "preprocessing_candidates",
           "sample_rows", "compare_candidates", "classes_flag"]

log = logging.getLogger(__name__)

MARGIN = 0.2
"""Balanced agreement an alternative must gain before it counts (0.5 vs 0.3 on two classes: a coin vs a model worse than one)."""
ALPHA = 0.001
"""Level of the exact sign test on the images where the assumed and the alternative reading disagree."""
SAMPLE = 128
"""Probe images the normalisation and input-size candidates are compared on (stratified by label)."""
NATIVE_SIZE = 224


def balanced_agreement(y_true: np.ndarray, y_pred: np.ndarray, mapping: np.ndarray) -> float:
    """Mean over the label classes present of the share of their images predicted as ``mapping[label]``."""
    present = np.unique(y_true)
    return float(np.mean([np.mean(y_pred[y_true == k] == mapping[k]) for k in present]))


def _recall_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, n_outputs: int) -> np.ndarray:
    """R[k, j]: the share of label-k images predicted as output j (zero rows for absent classes)."""
    counts = np.zeros((n_classes, n_outputs))
    np.add.at(counts, (y_true, y_pred), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def best_mapping(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, n_outputs: int) -> np.ndarray:
    """The assignment of label classes to distinct outputs that maximises the balanced agreement."""
    rows, cols = linear_sum_assignment(-_recall_matrix(y_true, y_pred, n_classes, n_outputs))
    mapping = np.arange(n_classes)
    mapping[rows] = cols
    return mapping


def _best_transposition(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, n_outputs: int) -> np.ndarray:
    """The best mapping that differs from the identity by one swap (of two classes, or of a class and an unused output)."""
    recall = _recall_matrix(y_true, y_pred, n_classes, n_outputs)
    ident = np.arange(n_classes)
    best, best_gain = None, -np.inf
    for k in range(n_classes):
        for j in range(n_outputs):
            if j == k:
                continue
            gain = recall[k, j] - recall[k, k] + (recall[j, k] - recall[j, j] if j < n_classes else 0.0)
            if gain > best_gain:
                best_gain, best = gain, (k, j)
    mapping = ident.copy()
    if best is not None:
        k, j = best
        mapping[k] = j
        if j < n_classes:
            mapping[j] = k
    return mapping


def sign_test(better: np.ndarray, worse: np.ndarray) -> tuple[int, int, float]:
    """(images only the first reading gets right, images where the readings differ, one-sided exact p)."""
    wins, losses = int(np.sum(better & ~worse)), int(np.sum(worse & ~better))
    d = wins + losses
    p = float(binomtest(wins, d, 0.5, alternative="greater").pvalue) if d else 1.0
    return wins, d, p


def beyond_doubt(gain: float, p: float) -> bool:
    """The rule every preflight decision uses."""
    return gain >= MARGIN and p < ALPHA


@dataclass(frozen=True)
class OrderTest:
    """The class-order test: ``verdict`` is ``verified``, ``contradicted`` or ``undecided``."""

    verdict: str
    assumed_agreement: float
    alternative: list[int]
    alternative_agreement: float
    p_value: float
    n: int

    def to_dict(self, outputs: Sequence[str]) -> dict[str, Any]:
        return {"verdict": self.verdict, "balanced_agreement": round(self.assumed_agreement, 4),
                "alternative_classes": [outputs[j] if j < len(outputs) else f"output{j}" for j in self.alternative],
                "alternative_agreement": round(self.alternative_agreement, 4), "p_value": float(f"{self.p_value:.3g}"),
                "n": self.n, "rule": f"gain >= {MARGIN} and exact sign test p < {ALPHA}"}


def verify_class_order(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, n_outputs: int) -> OrderTest:
    """Test the assumed order (label ``k`` is output ``k``) against the best other assignment."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    ident = np.arange(n_classes)
    best = best_mapping(y_true, y_pred, n_classes, n_outputs)
    if np.array_equal(best, ident):  # the assumption is the best reading: does it beat its nearest rival?
        rival = _best_transposition(y_true, y_pred, n_classes, n_outputs)
        wins, _, p = sign_test(y_pred == ident[y_true], y_pred == rival[y_true])
        a, b = balanced_agreement(y_true, y_pred, ident), balanced_agreement(y_true, y_pred, rival)
        verdict = "verified" if beyond_doubt(a - b, p) else "undecided"
        return OrderTest(verdict, a, rival.tolist(), b, p, len(y_true))
    wins, _, p = sign_test(y_pred == best[y_true], y_pred == ident[y_true])
    a, b = balanced_agreement(y_true, y_pred, ident), balanced_agreement(y_true, y_pred, best)
    verdict = "contradicted" if beyond_doubt(b - a, p) else "undecided"
    return OrderTest(verdict, a, best.tolist(), b, p, len(y_true))


def classes_flag(probe_classes: Sequence[str], mapping: Sequence[int], n_outputs: int) -> str:
    """``--classes`` naming the outputs in order when label ``k`` is output ``mapping[k]``."""
    names = [f"output{j}" for j in range(n_outputs)]
    for k, j in enumerate(mapping):
        names[j] = probe_classes[k]
    return "--classes " + ",".join(names)


def preprocessing_candidates(
    mean: tuple[float, ...] | None, std: tuple[float, ...] | None, size: tuple[int, int],
    *, try_norm: bool, try_size: bool,
) -> list[dict[str, Any]]:
    """The assumed preprocessing first, then each alternative worth trying."""
    norms = [(mean, std)] + ([(IMAGENET_MEAN, IMAGENET_STD)] if try_norm else [])
    sizes = [size] + ([(NATIVE_SIZE, NATIVE_SIZE)] if try_size and size != (NATIVE_SIZE, NATIVE_SIZE) else [])
    return [{"mean": m, "std": s, "input_size": z} for z in sizes for m, s in norms]


def sample_rows(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` rows, the same share of each label (at least one of each), seeded and sorted."""
    rng = np.random.default_rng(seed)
    if len(labels) <= n:
        return np.arange(len(labels))
    picked = []
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        take = max(1, round(n * len(rows) / len(labels)))
        picked.append(rng.choice(rows, size=min(take, len(rows)), replace=False))
    return np.sort(np.concatenate(picked))


@contextmanager
def _preprocessing(module: torch.nn.Module, mean: Any, std: Any) -> Iterator[None]:
    """Run the `AuditModel` ``module`` with another mean/std for a while, restoring its own after."""
    saved = (module.mean, module.std)
    dev = next((b.device for b in module.buffers()), None) or next((p.device for p in module.parameters()), torch.device("cpu"))
    module.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
    module.std = None if std is None else torch.tensor(std, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
    try:
        yield
    finally:
        module.mean, module.std = saved


def compare_candidates(
    module: torch.nn.Module, read: Any, y_true: np.ndarray, candidates: list[dict[str, Any]],
    n_classes: int, n_outputs: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """Predict the sample under each candidate; return each one's evidence and the index of a candidate that
    contradicts the first (assumed) one beyond doubt, or None.

    ``read(size)`` gives the sample's images (N, 3, H, W) in [0, 1] at ``size`` on the model's device.
    A candidate the model cannot run on is recorded with its error and left out.
    """
    rows: list[dict[str, Any]] = []
    preds: list[np.ndarray | None] = []
    for cand in candidates:
        entry = {"mean": cand["mean"], "std": cand["std"], "input_size": list(cand["input_size"])}
        try:
            with torch.no_grad(), _preprocessing(module, cand["mean"], cand["std"]):
                pred = module(read(cand["input_size"])).argmax(dim=1).cpu().numpy()
        except Exception as exc:  # noqa: BLE001 - a size the model cannot take is simply not a candidate
            entry["error"] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            rows.append(entry)
            preds.append(None)
            continue
        mapping = best_mapping(y_true, pred, n_classes, n_outputs)
        entry.update(balanced_agreement=round(balanced_agreement(y_true, pred, np.arange(n_classes)), 4),
                     best_order=mapping.tolist(),
                     best_agreement=round(balanced_agreement(y_true, pred, mapping), 4))
        rows.append(entry)
        preds.append(pred)
    assumed = preds[0]
    if assumed is None:
        return rows, None
    # preprocessing is judged with each candidate read in its own best class order (the order has its own test)
    hits0 = assumed == np.asarray(rows[0]["best_order"])[y_true]
    best_k, best_val = None, -1.0
    for k, (row, pred) in enumerate(zip(rows, preds)):
        if k == 0 or pred is None:
            continue
        hits = pred == np.asarray(row["best_order"])[y_true]
        _, _, p = sign_test(hits, hits0)
        _, _, p_back = sign_test(hits0, hits)
        row["p_value"], row["p_value_assumed_better"] = float(f"{p:.3g}"), float(f"{p_back:.3g}")
        if beyond_doubt(row["best_agreement"] - rows[0]["best_agreement"], p) and row["best_agreement"] > best_val:
            best_k, best_val = k, row["best_agreement"]
    return rows, best_k


def _describe(cand: dict[str, Any]) -> str:
    norm = "no normalisation" if cand["mean"] is None and cand["std"] is None else \
        f"mean {_csv(cand['mean'])} std {_csv(cand['std'])}"
    return f"{norm} at {cand['input_size'][0]}x{cand['input_size'][1]}"


def _csv(values: Any) -> str:
    return "none" if values is None else ",".join(f"{v:g}" for v in values)


def _flags_for(cand: dict[str, Any], assumed: dict[str, Any], probe_classes: Sequence[str], n_outputs: int) -> str:
    flags = []
    if (cand["mean"], cand["std"]) != (assumed["mean"], assumed["std"]):
        flags.append(f"--mean {_csv(cand['mean'])} --std {_csv(cand['std'])}")
    if list(cand["input_size"]) != list(assumed["input_size"]):
        h, w = cand["input_size"]
        flags.append(f"--input-size {h}" if h == w else f"--input-size {h},{w}")
    if cand.get("best_order") is not None and cand["best_order"] != list(range(len(probe_classes))):
        flags.append(classes_flag(probe_classes, cand["best_order"], n_outputs))
    return " ".join(flags)


def verify_preprocessing(
    model: Any, probe: Any, input_size: tuple[int, int], n_outputs: int, device: torch.device, *,
    seed: int = 0, batch_size: int = 64,
) -> dict[str, dict[str, Any]]:
    """The ``normalisation`` and ``input_size`` entries of ``model.assumptions``.

    What the model declares is recorded as declared; what it does not is compared with its alternative
    on a stratified sample of the probe. Raises `ModelLoadError` (exit 2) naming the flags to pass when an
    alternative is better beyond doubt.
    """

    by = model.declared_by
    norm_by = by.get("mean") or by.get("std")
    entries = {
        "normalisation": {"value": {"mean": _list(model.mean), "std": _list(model.std)}, "declared_by": norm_by,
                          "assumed": None if norm_by else "none (pixels in [0, 1])"},
        "input_size": {"value": list(input_size), "declared_by": by.get("input_size"),
                       "assumed": None if by.get("input_size") else image_size_basis(probe, input_size)},
    }
    try_norm, try_size = norm_by is None, by.get("input_size") is None
    if not (try_norm or try_size):
        for entry in entries.values():
            entry["verdict"] = "declared"
        return entries
    rows = sample_rows(probe.table["label"].to_numpy(), SAMPLE, seed)
    cache: dict[tuple[int, int], tuple[torch.Tensor, np.ndarray]] = {}

    def read(size: tuple[int, int]) -> torch.Tensor:
        size = (int(size[0]), int(size[1]))
        if size not in cache:
            images, index = [], []
            for batch in make_loader(probe, size, batch_size=batch_size, indices=rows.tolist()):
                if len(batch):
                    images.append(batch.images)
                    index.append(batch.indices.numpy())
            cache[size] = (torch.cat(images).to(device), np.concatenate(index))
        return cache[size][0]

    read(input_size)
    y_true = probe.table["label"].to_numpy()[cache[tuple(input_size)][1]].astype(np.int64)
    n_classes = len(probe.classes)
    cands = preprocessing_candidates(model.mean, model.std, tuple(input_size), try_norm=try_norm, try_size=try_size)
    rows_out, winner = compare_candidates(model.module, read, y_true, cands, n_classes, n_outputs)
    if winner is not None:
        best, assumed = rows_out[winner], rows_out[0]
        flags = _flags_for(best, assumed, probe.classes, n_outputs)
        raise ModelLoadError(
            f"{model.source}: the model agrees with the probe's labels far better with {_describe(best)} "
            f"(balanced agreement {best['best_agreement']:.2f} on {len(y_true)} probe images) than with the assumed "
            f"{_describe(assumed)} ({assumed['best_agreement']:.2f}); pass {flags}, or declare the preprocessing "
            "you mean with --mean/--std/--input-size")
    for key, tried in (("normalisation", try_norm), ("input_size", try_size)):
        if not tried:
            entries[key]["verdict"] = "declared"
            continue
        same = ("input_size",) if key == "normalisation" else ("mean", "std")  # alternatives in this fact alone
        rivals = [r for r in rows_out[1:] if "error" not in r and all(r[f] == rows_out[0][f] for f in same)
                  and any(r[f] != rows_out[0][f] for f in ("mean", "std", "input_size"))]
        verified = bool(rivals) and all(
            beyond_doubt(rows_out[0]["best_agreement"] - r["best_agreement"], r["p_value_assumed_better"]) for r in rivals)
        entries[key]["verdict"] = "verified" if verified else "undecided"
        entries[key]["evidence"] = {"n": int(len(y_true)), "candidates": [rows_out[0], *rivals],
                                    "rule": f"gain >= {MARGIN} and exact sign test p < {ALPHA}"}
        if not verified and rivals:
            log.warning("%s: the assumed %s (%s) cannot be told apart from the alternative on %d probe images (balanced "
                        "agreement %.2f vs %.2f); declare it with %s to be sure", model.source, key.replace("_", " "),
                        _describe(rows_out[0]), len(y_true), rows_out[0]["best_agreement"], rivals[0]["best_agreement"],
                        "--mean/--std" if key == "normalisation" else "--input-size")
    return entries


def _list(values: Any) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def verify_classes(model: Any, probe: Any, y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str],
                   n_outputs: int) -> dict[str, Any]:
    """The ``classes`` entry of ``model.assumptions``, from the full probe's predictions.

    Undeclared: raises `ModelLoadError` (exit 2) naming ``--classes`` when another order is better beyond
    doubt. Declared: a contradiction is logged as a warning and recorded, never acted on.
    """

    declared_by = model.declared_by.get("classes")
    order = str(probe.meta.get("class_order", "sorted"))
    test = verify_class_order(y_true, y_pred, len(probe.classes), n_outputs)
    entry: dict[str, Any] = {"value": list(classes), "declared_by": declared_by,
                             "assumed": None if declared_by else CLASS_ORDER_SOURCES.get(order, order),
                             "evidence": test.to_dict(classes)}
    entry["verdict"] = "declared" if declared_by else test.verdict
    if test.verdict == "contradicted":
        flag = classes_flag(probe.classes, test.alternative, n_outputs)
        where = (f"the {declared_by}'s classes {','.join(classes)}" if declared_by
                 else f"the assumed order {','.join(classes)} ({CLASS_ORDER_SOURCES.get(order, order)})")
        text = (f"{model.source}: its outputs agree with the labels of {probe.source} far better as {flag[len('--classes '):]} "
                f"(balanced agreement {test.alternative_agreement:.2f}) than in {where} ({test.assumed_agreement:.2f}, "
                f"exact sign test p = {test.p_value:.2g} on {test.n} images)")
        if not declared_by:
            raise ModelLoadError(f"{text}; pass {flag}, or --classes {','.join(classes)} if that is really its order")
        log.warning("%s; kept as declared", text)
    elif test.verdict == "undecided" and not declared_by:
        log.warning("%s: the class order %s (%s) could not be verified: the model is near chance under every order "
                    "(balanced agreement %.2f vs %.2f); declare it with --classes", model.source, ",".join(classes),
                    CLASS_ORDER_SOURCES.get(order, order), test.assumed_agreement, test.alternative_agreement)
    return entry
