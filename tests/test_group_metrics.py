"""group_metrics against hand-computed numbers and against fairlearn called directly."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from fairlearn.metrics import MetricFrame, selection_rate

from auditor.checks import CheckContext, Predictions, get_check
from auditor.errors import UsageError
from probes.base import Probe


def _context(y_true, y_pred, groups, classes=("neg", "pos"), positive=1, attr="gender"):
    n = len(y_true)
    table = pd.DataFrame({"path": [""] * n, "label": y_true, attr: groups})
    probe = Probe(source="test", format="test", root=None, table=table, classes=list(classes), target="label",
                  attributes=[attr])
    k = len(classes)
    logits = np.full((n, k), -5.0)
    logits[np.arange(n), y_pred] = 5.0
    pred = Predictions(index=np.arange(n), logits=logits, y_true=np.asarray(y_true), y_pred=np.asarray(y_pred))
    return CheckContext(model=None, probe=probe, predictions=pred, classes=list(classes), positive_class=positive,
                        input_size=(8, 8), device=torch.device("cpu"), seed=0, budget="quick", attributes=[attr])


# Group a: TP FN TN TN -> acc .75, selection .25, TPR .5, FPR 0
# Group b: TP TP FP TN -> acc .75, selection .75, TPR 1,  FPR .5
Y_TRUE = [1, 1, 0, 0, 1, 1, 0, 0]
Y_PRED = [1, 0, 0, 0, 1, 1, 1, 0]
GROUPS = ["a"] * 4 + ["b"] * 4


def _run(**params):
    return get_check("group_metrics")(**params).run(_context(Y_TRUE, Y_PRED, GROUPS))


def test_per_group_rates_match_hand_computation():
    res = _run(min_group_size=1)
    a, b = res.by_group["gender"]["a"], res.by_group["gender"]["b"]
    assert (a["n"], a["accuracy"]["value"], a["selection_rate"]["value"], a["tpr"]["value"], a["fpr"]["value"]) == (4, 0.75, 0.25, 0.5, 0.0)
    assert (b["n"], b["accuracy"]["value"], b["selection_rate"]["value"], b["tpr"]["value"], b["fpr"]["value"]) == (4, 0.75, 0.75, 1.0, 0.5)


def test_disparities_match_hand_computation():
    m = _run(min_group_size=1).metrics["gender"]
    assert m["accuracy_difference"]["value"] == 0.0
    assert m["selection_rate_difference"]["value"] == 0.5
    assert m["selection_rate_ratio"]["value"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["selection_rate_ratio"]["groups"] == ["a", "b"]
    assert m["tpr_ratio"]["value"] == 0.5
    assert m["fpr_ratio"]["value"] == 0.0
    assert m["equalized_odds_difference"]["value"] == 0.5
    assert m["worst_group_accuracy"]["value"] == 0.75


def test_overall_metrics_cover_every_prediction():
    overall = _run(min_group_size=1).metrics["overall"]
    assert overall["n"] == 8
    assert overall["accuracy"]["value"] == 0.75
    assert overall["selection_rate"]["value"] == 0.5


def test_small_groups_are_flagged_and_left_out_of_disparities():
    res = _run(min_group_size=5)
    assert res.by_group["gender"]["a"]["insufficient_data"] is True
    assert res.metrics["gender"]["selection_rate_ratio"]["value"] is None
    assert "fewer than two groups" in res.metrics["gender"]["selection_rate_ratio"]["reason"]


def test_undefined_tpr_is_null_not_zero():
    ctx = _context([0, 0, 1, 1], [0, 1, 1, 1], ["a", "a", "b", "b"])
    res = get_check("group_metrics")(min_group_size=1).run(ctx)
    assert res.by_group["gender"]["a"]["tpr"]["value"] is None
    assert res.by_group["gender"]["b"]["fpr"]["value"] is None


def test_selection_rate_agrees_with_fairlearn_on_random_data():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, 500)
    y_pred = rng.integers(0, 2, 500)
    groups = rng.choice(["x", "y", "z"], 500)
    res = get_check("group_metrics")(min_group_size=1).run(_context(list(y_true), list(y_pred), list(groups)))
    ref = MetricFrame(metrics=selection_rate, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    for g in ("x", "y", "z"):
        assert res.by_group["gender"][g]["selection_rate"]["value"] == pytest.approx(ref.by_group[g], abs=1e-6)
    assert res.metrics["gender"]["selection_rate_difference"]["value"] == pytest.approx(ref.difference(), abs=1e-6)
    assert res.metrics["gender"]["selection_rate_ratio"]["value"] == pytest.approx(ref.ratio(), abs=1e-6)


def test_multiclass_rates_are_macro_one_vs_rest():
    # classes 0,1,2; one group; each class: selection 1/3; class 0: TPR 1 FPR 0; class 1: TPR .5 FPR .25; class 2: TPR .5 FPR .25
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 2, 2, 1]
    ctx = _context(y_true, y_pred, ["g"] * 6, classes=("a", "b", "c"), positive=0)
    res = get_check("group_metrics")(min_group_size=1).run(ctx)
    g = res.by_group["gender"]["g"]
    assert g["accuracy"]["value"] == pytest.approx(4 / 6, abs=1e-6)
    assert g["selection_rate"]["value"] == pytest.approx(1 / 3, abs=1e-6)
    assert g["tpr"]["value"] == pytest.approx((1 + 0.5 + 0.5) / 3, abs=1e-6)
    assert g["fpr"]["value"] == pytest.approx((0 + 0.25 + 0.25) / 3, abs=1e-6)


def test_bad_parameter_gets_the_standard_message():
    with pytest.raises(UsageError, match=r"The 'min_group_size' parameter of group_metrics must be an int >= 1. Got 0 instead."):
        get_check("group_metrics")(min_group_size=0)


def test_unknown_parameter_names_the_valid_ones():
    with pytest.raises(UsageError, match="min_group_size"):
        get_check("group_metrics")(min_group_szie=3)


def test_equal_groups_name_two_different_groups():
    ctx = _context([1, 0, 1, 0], [1, 0, 1, 0], ["a", "a", "b", "b"])
    m = get_check("group_metrics")(min_group_size=1).run(ctx).metrics["gender"]
    assert m["accuracy_difference"]["value"] == 0.0
    assert m["accuracy_difference"]["groups"] == ["a", "b"]
