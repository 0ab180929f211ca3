"""The fairness gates judge the model, not the probe: the four-fifths rule is taken on the selection rate
among images whose true label is positive (fairlearn's equal opportunity ratio), so a perfect model
passes whatever each group's label mix; and a gap below its practical floor is never headlined, however
small its p-value."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from auditor.report.sections.group_metrics import significant_gaps
from auditor.checks import CheckContext, Predictions, get_check
from auditor.checks.significance import PRACTICAL_FLOORS, clears_floor
from auditor.policy import evaluate_policy, load_policy
from probes.base import Probe

FAST = {"n_boot": 200, "n_perm": 1000}


def _context(y_true, y_pred, groups, *, k=2, margins=None) -> CheckContext:
    """Predictions for one attribute ``gender``; ``margins`` sets each row's logit margin (its confidence)."""
    n = len(y_true)
    classes = [f"c{i}" for i in range(k)] if k > 2 else ["neg", "pos"]
    table = pd.DataFrame({"path": [""] * n, "label": y_true, "gender": groups})
    probe = Probe(source="test", format="test", root=None, table=table, classes=classes, target="label",
                  attributes=["gender"])
    logits = np.zeros((n, k))
    logits[np.arange(n), y_pred] = 10.0 if margins is None else np.asarray(margins)
    pred = Predictions(index=np.arange(n), logits=logits, y_true=np.asarray(y_true), y_pred=np.asarray(y_pred))
    return CheckContext(model=None, probe=probe, predictions=pred, classes=classes, positive_class=1,
                        input_size=(8, 8), device=torch.device("cpu"), seed=0, budget="quick", attributes=["gender"])


def _results(ctx: CheckContext, **params) -> dict:
    """results.json holding group_metrics alone, run with the default policy's parameter defaults."""
    cfg = {**load_policy().check_params, **FAST, **params}
    return {"checks": {"group_metrics": get_check("group_metrics")(**cfg).run(ctx).to_dict()}}


def _by_id(policy_block: dict) -> dict:
    return {c["id"]: c for c in policy_block["clauses"]}


def _labels(mix: dict[str, tuple[int, int]]) -> tuple[list[int], list[str]]:
    """``{"female": (30, 70)}``: 30 positives and 70 negatives of each group."""
    y, g = [], []
    for group, (pos, neg) in mix.items():
        y += [1] * pos + [0] * neg
        g += [group] * (pos + neg)
    return y, g


UNEQUAL_MIX = {"female": (30, 70), "male": (70, 30)}  # selection rates of a perfect model: 0.3 and 0.7


# --- (a) a perfect model passes whatever the label mix -------------------------------------------

def test_perfect_model_on_unequal_label_mixes_passes_four_fifths_and_every_group_metrics_blocker():
    y, g = _labels(UNEQUAL_MIX)
    res = _results(_context(y, y, g))
    out = _by_id(evaluate_policy(load_policy(), res))
    assert out["four-fifths[gender]"]["value"] == 1.0
    assert out["four-fifths[gender]"]["result"] == "pass"
    blockers = [c for c in out.values() if c["severity"] == "blocker" and ".group_metrics." in c["metric"]]
    assert blockers and all(c["result"] == "pass" for c in blockers)
    assert not any(c["result"] == "fail" for c in out.values() if c["severity"] == "blocker")


def test_perfect_model_still_reports_the_unconditioned_selection_ratio_as_a_warning():
    y, g = _labels(UNEQUAL_MIX)
    out = _by_id(evaluate_policy(load_policy(), _results(_context(y, y, g))))
    dp = out["demographic-parity-ratio[gender]"]
    assert (dp["severity"], dp["result"]) == ("warning", "fail")
    assert dp["value"] == pytest.approx(0.3 / 0.7, abs=1e-6)
    assert "label mix" in dp["description"]


def test_perfect_multiclass_model_passes_four_fifths_with_unequal_class_mixes():
    y = [0] * 50 + [1] * 30 + [2] * 20 + [0] * 10 + [1] * 30 + [2] * 60
    g = ["female"] * 100 + ["male"] * 100
    out = _by_id(evaluate_policy(load_policy(), _results(_context(y, y, g, k=3))))
    assert (out["four-fifths[gender]"]["value"], out["four-fifths[gender]"]["result"]) == (1.0, "pass")


@pytest.mark.parametrize("name", ["default", "strict-ci", "eu-ai-act-high-risk"])
def test_each_shipped_policy_judges_four_fifths_on_the_true_positive_rate(name):
    blockers = [c for c in load_policy(name).clauses if c.severity == "blocker"]
    assert not [c.id for c in blockers if c.metric.endswith("selection_rate_ratio")]
    assert any(c.metric.endswith(".equal_opportunity_ratio") for c in blockers)
    assert any(c.metric.endswith(".selection_rate_ratio") and c.severity == "warning" for c in load_policy(name).clauses)


# --- (b) the ratio, hand-computed -----------------------------------------------------------------

# positives selected / positives: a 3/4 = 0.75, b 2/4 = 0.5, c 2/2 = 1.0; the negatives (one false
# positive each in a and b) do not enter it.
HAND_TRUE = [1, 1, 1, 1, 0, 0] + [1, 1, 1, 1, 0, 0] + [1, 1, 0, 0]
HAND_PRED = [1, 1, 1, 0, 1, 0] + [1, 1, 0, 0, 1, 0] + [1, 1, 0, 0]
HAND_GROUPS = ["a"] * 6 + ["b"] * 6 + ["c"] * 4


def test_equal_opportunity_ratio_is_the_smallest_over_the_largest_true_positive_rate():
    m = _results(_context(HAND_TRUE, HAND_PRED, HAND_GROUPS), min_group_size=1)["checks"]["group_metrics"]["metrics"]
    node = m["gender"]["equal_opportunity_ratio"]
    assert node["value"] == 0.5  # b's 0.5 over c's 1.0
    assert node["groups"] == ["b", "c"]
    assert node["excluded_groups"] == []
    assert node["ci"] is not None and node["ci"][0] <= 0.5 <= node["ci"][1]
    assert set(node) == set(m["gender"]["selection_rate_ratio"])  # the same shape as the selection-rate ratio


def test_equal_opportunity_ratio_names_the_small_groups_it_left_out():
    m = _results(_context(HAND_TRUE, HAND_PRED, HAND_GROUPS), min_group_size=5)["checks"]["group_metrics"]["metrics"]
    node = m["gender"]["equal_opportunity_ratio"]
    assert (node["value"], node["groups"], node["excluded_groups"]) == (pytest.approx(0.5 / 0.75), ["b", "a"], ["c"])


# --- (c) the gate still catches bias --------------------------------------------------------------

def test_selecting_qualified_women_at_half_the_rate_of_qualified_men_fails_four_fifths():
    y, g = _labels({"female": (200, 100), "male": (200, 100)})
    pred = list(y)
    for i in range(100):  # half of the qualified women rejected; 80% of qualified men selected
        pred[i] = 0
    for i in range(300, 340):
        pred[i] = 0
    out = _by_id(evaluate_policy(load_policy(), _results(_context(y, pred, g))))
    assert out["four-fifths[gender]"]["value"] == pytest.approx(0.5 / 0.8, abs=1e-6)
    assert out["four-fifths[gender]"]["result"] == "fail"


# --- (d) practical floors --------------------------------------------------------------------------

def _margin(conf: float) -> float:
    """The logit margin of a two-class softmax with top probability ``conf``."""
    return math.log(conf / (1 - conf))


def test_a_gap_is_practical_from_its_floor_and_a_ratio_only_when_its_difference_is_too():
    assert clears_floor("ece", 0.0003) is False
    assert clears_floor("accuracy", PRACTICAL_FLOORS["accuracy"]) is True
    assert clears_floor("tpr", 0.009, ratio=0.99) is False and clears_floor("tpr", 0.09, ratio=0.9) is True
    assert clears_floor("ece", 0.0003, ratio=0.7) is False  # 0.0007 / 0.0010: far from 1, yet no gap
    assert clears_floor("brier", None) is None


def test_significant_ece_gap_of_three_ten_thousandths_is_not_headlined():
    y, g = _labels({"female": (100, 100), "male": (100, 100)})
    margins = [_margin(0.9990)] * 200 + [_margin(0.9993)] * 200  # perfect, confident, ECE 0.0010 vs 0.0007
    res = _results(_context(y, y, g, margins=margins))
    ece = res["checks"]["group_metrics"]["metrics"]["gender"]["ece_difference"]
    assert ece["value"] == pytest.approx(0.0003, abs=1e-6)
    assert (ece["significant"], ece["practical"]) == (True, False)
    assert res["checks"]["group_metrics"]["metrics"]["gender"]["ece_ratio"]["practical"] is False
    assert significant_gaps(res) == ([], 0)


def test_large_real_gap_is_still_headlined():
    y, g = _labels({"female": (100, 100), "male": (100, 100)})
    pred = list(y)
    for i in range(50):  # half of the qualified women rejected
        pred[i] = 0
    res = _results(_context(y, pred, g))
    tpr = res["checks"]["group_metrics"]["metrics"]["gender"]["tpr_difference"]
    assert (tpr["value"], tpr["significant"], tpr["practical"]) == (0.5, True, True)
    gaps, _ = significant_gaps(res)
    assert ("gender", "tpr", 0.5) in [(x["scope"], x["rate"], x["gap"]) for x in gaps]
