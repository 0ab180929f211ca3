"""Robust accuracy per group is the group-metrics machinery on the adversarial answers: the numbers
equal a hand computation, and intervals and gaps come with them."""
from __future__ import annotations

import numpy as np
import torch

from auditor.checks.attack_groups import robust_accuracy_by_group
from auditor.checks.base import CheckContext, Predictions
from auditor.models import LoadedModel
from probes import open_probe


def _context(n: int = 200) -> CheckContext:
    probe = open_probe(f"synth:faces:n={n}")
    y = probe.table["label"].to_numpy()
    logits = np.stack([1.0 - y, y.astype(float)], axis=1)  # clean predictions are all correct
    model = LoadedModel(module=torch.nn.Identity(), source="test", form="module", sha256="0")
    return CheckContext(model=model, probe=probe, predictions=Predictions(np.arange(n), logits, y, y.copy()),
                        classes=list(probe.classes), positive_class=1, input_size=(64, 64), device=torch.device("cpu"),
                        seed=0, budget="quick", attributes=list(probe.attributes))


def test_robust_accuracy_per_group_equals_a_hand_computation():
    ctx = _context()
    table = ctx.probe.table
    rows = np.arange(0, 200, 2)  # every other image was attacked
    y = ctx.predictions.y_true[rows]
    fooled = (table["race"].to_numpy()[rows] == "black") | (np.arange(len(rows)) % 5 == 0)
    adv = np.where(fooled, 1 - y, y)
    out = robust_accuracy_by_group(ctx, rows, np.eye(2)[adv], n_boot=200, n_perm=200, min_group_size=5)
    assert out["overall"]["n"] == len(rows)
    assert abs(out["overall"]["accuracy"]["value"] - np.mean(~fooled)) < 1e-6  # values are rounded to 6 places
    for race, g in out["scopes"]["race"]["groups"].items():
        sel = table["race"].to_numpy()[rows] == race
        assert g["n"] == sel.sum()
        assert abs(g["accuracy"]["value"] - np.mean(~fooled[sel])) < 1e-6
        lo, hi = g["accuracy"]["ci"]
        assert lo <= g["accuracy"]["value"] <= hi
    gap = out["scopes"]["race"]["accuracy_difference"]
    assert "black" in gap["groups"] and gap["value"] > 0.5 and gap["p_value"] < 0.05
    assert out["scopes"]["race"]["worst_group_accuracy"]["value"] == 0.0
    assert "gender+race" in out["scopes"]
