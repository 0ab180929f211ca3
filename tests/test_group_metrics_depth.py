"""group_metrics in depth: intersections, every rate, calibration, disparities, tests and power,
checked against fairlearn and scikit-learn called directly and against hand-computed fixtures."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import torch
from fairlearn.metrics import (
    MetricFrame, false_negative_rate, false_positive_rate, selection_rate, true_negative_rate, true_positive_rate,
)
from sklearn.metrics import accuracy_score, brier_score_loss, precision_score

from auditor.checks import CheckContext, Predictions, get_check
from probes.base import Probe

ATTRS = ("gender", "age", "race")


def _ctx(table: pd.DataFrame, logits: np.ndarray, classes=("neg", "pos"), positive=1, attrs=ATTRS, seed=0) -> CheckContext:
    n = len(table)
    probe = Probe("test", "test", None, table, list(classes), "label", list(attrs))
    y_true = table["label"].to_numpy()
    pred = Predictions(np.arange(n), logits, y_true, logits.argmax(axis=1))
    return CheckContext(model=None, probe=probe, predictions=pred, classes=list(classes), positive_class=positive,  # type: ignore[arg-type]
                        input_size=(1, 1), device=torch.device("cpu"), seed=seed, budget="quick", attributes=list(attrs))


def _random(n=3000, k=2, seed=0, gap=0.0):
    """Random probe: three attributes, noisy predictions; ``gap`` extra errors for race=black."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({
        "path": [""] * n, "label": rng.integers(0, k, n),
        "gender": rng.choice(["female", "male"], n), "age": rng.choice(["0-19", "20-39", "40-59", "60+"], n),
        "race": rng.choice(["asian", "black", "white"], n),
    })
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), table["label"]] += 1.2
    flip = (table["race"] == "black").to_numpy() & (rng.random(n) < gap)
    logits[flip, table["label"].to_numpy()[flip]] -= 5.0
    return table, logits


@pytest.fixture(scope="module")
def binary():
    table, logits = _random()
    res = get_check("group_metrics")(n_boot=200, n_perm=500).run(_ctx(table, logits))
    return table, logits, res


def test_every_attribute_and_every_intersection_is_a_scope(binary):
    _, _, res = binary
    assert [s for s in res.metrics if s != "overall"] == [
        "gender", "age", "race", "gender+age", "gender+race", "age+race", "gender+age+race"]
    assert res.metrics["gender+race"]["scope"] == {"kind": "intersection", "attributes": ["gender", "race"]}
    assert res.metrics["race"]["scope"] == {"kind": "attribute", "attributes": ["race"]}
    assert len(res.by_group["gender+age+race"]) == 2 * 4 * 3
    assert res.by_group["gender+race"]["female & black"]["members"] == {"gender": "female", "race": "black"}


def test_max_intersection_order_limits_the_scopes():
    table, logits = _random(600)
    res = get_check("group_metrics")(n_boot=0, n_perm=0, max_intersection_order=1).run(_ctx(table, logits))
    assert [s for s in res.metrics if s != "overall"] == ["gender", "age", "race"]


def _fairlearn(table: pd.DataFrame, y_pred: np.ndarray, features) -> pd.DataFrame:
    metrics = {
        "accuracy": accuracy_score, "selection_rate": selection_rate, "tpr": true_positive_rate,
        "fnr": false_negative_rate, "fpr": false_positive_rate, "tnr": true_negative_rate,
        "precision": functools.partial(precision_score, zero_division=np.nan),
    }
    return MetricFrame(metrics=metrics, y_true=table["label"].to_numpy(), y_pred=y_pred,
                       sensitive_features=table[features]).by_group


@pytest.mark.parametrize("scope", ["race", "gender+race", "gender+age+race"])
def test_every_rate_of_every_group_agrees_with_fairlearn(binary, scope):
    table, logits, res = binary
    ref = _fairlearn(table, logits.argmax(axis=1), scope.split("+"))
    for key, row in ref.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        got = res.by_group[scope][" & ".join(key)]
        for m in ("accuracy", "selection_rate", "tpr", "fnr", "fpr", "tnr", "precision"):
            assert got[m]["value"] == pytest.approx(row[m], abs=1e-6), (scope, key, m)
        assert got["error_rate"]["value"] == pytest.approx(1 - row["accuracy"], abs=1e-6)


def test_disparities_agree_with_fairlearn_difference_and_ratio(binary):
    table, logits, res = binary
    ref = MetricFrame(metrics={"tpr": true_positive_rate, "sel": selection_rate}, y_true=table["label"], y_pred=logits.argmax(axis=1),
                      sensitive_features=table[["gender", "race"]])
    m = res.metrics["gender+race"]
    assert m["tpr_difference"]["value"] == pytest.approx(ref.difference()["tpr"], abs=1e-6)
    assert m["demographic_parity_ratio"]["value"] == pytest.approx(ref.ratio()["sel"], abs=1e-6)
    assert m["equal_opportunity_difference"]["value"] == m["tpr_difference"]["value"]


def test_calibration_matches_a_row_by_row_computation(binary):
    table, logits, res = binary
    z = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    sel = (table["race"] == "asian").to_numpy()
    p, y = probs[sel], table["label"].to_numpy()[sel]
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y)
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum(abs(correct[bins == b].mean() - conf[bins == b].mean()) * (bins == b).sum() for b in np.unique(bins)) / len(y)
    got = res.by_group["race"]["asian"]
    assert got["ece"]["value"] == pytest.approx(ece, abs=1e-6)
    assert got["brier"]["value"] == pytest.approx(brier_score_loss(y, p[:, 1]), abs=1e-6)


def test_calibration_hand_fixture():
    # two rows, both predicted positive with p=0.9; one right, one wrong: ECE |0.5-0.9| = 0.4
    # Brier: (0.9-1)^2 and (0.9-0)^2 -> (0.01 + 0.81) / 2 = 0.41
    table = pd.DataFrame({"path": ["", ""], "label": [1, 0], "gender": ["a", "a"]})
    logits = np.log(np.array([[0.1, 0.9], [0.1, 0.9]]))
    res = get_check("group_metrics")(min_group_size=1, n_boot=0, n_perm=0).run(_ctx(table, logits, attrs=("gender",)))
    assert res.by_group["gender"]["a"]["ece"]["value"] == pytest.approx(0.4, abs=1e-6)
    assert res.by_group["gender"]["a"]["brier"]["value"] == pytest.approx(0.41, abs=1e-6)


def test_four_fifths_rule_flags_groups_below_eighty_percent_of_the_top_rate():
    # selection rates: a 0.5, b 0.45 (ratio .9), c 0.3 (ratio .6): only c is flagged
    rows = [("a", 1)] * 50 + [("a", 0)] * 50 + [("b", 1)] * 45 + [("b", 0)] * 55 + [("c", 1)] * 30 + [("c", 0)] * 70
    table = pd.DataFrame({"path": "", "label": [p for _, p in rows], "gender": [g for g, _ in rows]})
    logits = np.stack([-np.array(table["label"]), np.array(table["label"])], axis=1).astype(float)
    m = get_check("group_metrics")(n_boot=0, n_perm=0).run(_ctx(table, logits, attrs=("gender",))).metrics["gender"]
    assert m["four_fifths_violations"]["value"] == 1
    assert m["four_fifths_violations"]["groups"] == ["c"]
    assert m["demographic_parity_ratio"]["value"] == pytest.approx(0.6, abs=1e-6)
    assert m["demographic_parity_ratio"]["groups"] == ["c", "a"]


def test_difference_to_overall_names_the_farthest_group():
    rows = [("a", 1, 1)] * 40 + [("b", 1, 1)] * 30 + [("b", 1, 0)] * 10 + [("c", 1, 1)] * 38 + [("c", 1, 0)] * 2
    table = pd.DataFrame({"path": "", "label": [t for _, t, _ in rows], "gender": [g for g, _, _ in rows]})
    pred = np.array([p for _, _, p in rows])
    logits = np.stack([-pred, pred], axis=1).astype(float)
    res = get_check("group_metrics")(n_boot=0, n_perm=0).run(_ctx(table, logits, attrs=("gender",)))
    overall = 108 / 120
    m = res.metrics["gender"]["accuracy_max_abs_difference_to_overall"]
    assert m["value"] == pytest.approx(overall - 0.75, abs=1e-6) and m["groups"] == ["b"]
    assert res.by_group["gender"]["a"]["vs_overall"]["accuracy"]["ratio"] == pytest.approx(1 / overall, abs=1e-6)


def test_equalized_odds_takes_the_larger_gap_and_says_which():
    table, logits = _random(2000, seed=4, gap=0.3)
    m = get_check("group_metrics")(n_boot=100, n_perm=200).run(_ctx(table, logits)).metrics["race"]
    eo = m["equalized_odds_difference"]
    assert eo["value"] == max(m["tpr_difference"]["value"], m["fpr_difference"]["value"])
    assert eo["driven_by"] in ("tpr", "fpr")
    assert m["equalized_odds_ratio"]["value"] == min(m["tpr_ratio"]["value"], m["fpr_ratio"]["value"])


def test_a_real_gap_is_significant_after_correction_and_noise_is_not():
    table, logits = _random(3000, seed=1, gap=0.25)
    res = get_check("group_metrics")(n_boot=0, n_perm=2000).run(_ctx(table, logits))
    acc = res.metrics["race"]["accuracy_difference"]
    assert "black" in acc["groups"] and acc["significant"] is True and acc["p_value"] < 1e-3
    assert res.by_group["race"]["black"]["accuracy"]["significant"] is True
    assert res.metrics["race"]["error_rate_difference"]["p_value"] == acc["p_value"]
    null = get_check("group_metrics")(n_boot=0, n_perm=2000).run(_ctx(*_random(3000, seed=2))).metrics
    assert null["gender"]["accuracy_difference"]["significant"] is False


def test_adjusted_p_values_are_never_below_the_raw_ones_and_bh_is_less_strict_than_holm():
    table, logits = _random(2000, seed=5, gap=0.1)
    runs = {c: get_check("group_metrics")(n_boot=0, n_perm=500, correction=c).run(_ctx(table, logits)) for c in ("holm", "bh")}
    for scope, m in runs["holm"].metrics.items():
        for key, entry in m.items():
            if isinstance(entry, dict) and entry.get("p_adjusted") is not None:
                assert entry["p_adjusted"] >= entry["p_value"] - 1e-9
                assert runs["bh"].metrics[scope][key]["p_adjusted"] <= entry["p_adjusted"] + 1e-9


def test_small_groups_get_a_sample_size_estimate_and_gaps_a_power_estimate():
    table, logits = _random(600, seed=3, gap=0.3)
    res = get_check("group_metrics")(n_boot=0, n_perm=0).run(_ctx(table, logits))
    small = [(g, v) for g, v in res.by_group["gender+age+race"].items() if v["insufficient_data"]]
    assert small
    for _, v in small:
        assert v["n_needed"] >= 30 - v["n"]
    m = res.metrics["gender+age+race"]
    assert m["n_excluded"] == len(small) == m["n_groups"] - m["n_eligible"]
    assert sorted(m["accuracy_difference"]["excluded_groups"]) == sorted(g for g, _ in small)
    power = res.metrics["race"]["accuracy_difference"]["power"]
    assert 0 <= power["achieved"] <= 1 and power["n_per_group_needed"] > 0 and power["n_more"] >= 0


def test_multiclass_reports_each_class_one_vs_rest():
    table, logits = _random(900, k=3, seed=6)
    res = get_check("group_metrics")(n_boot=50, n_perm=100).run(_ctx(table, logits, classes=("a", "b", "c"), positive=0))
    pc = res.by_group["race"]["asian"]["per_class"]
    sel = (table["race"] == "asian").to_numpy()
    y, p = table["label"].to_numpy()[sel], logits.argmax(axis=1)[sel]
    for k, name in enumerate(("a", "b", "c")):
        assert pc[name]["tpr"]["value"] == pytest.approx(true_positive_rate(y == k, p == k), abs=1e-6)
        assert pc[name]["precision"]["ci"] is not None
    assert res.by_group["race"]["asian"]["tpr"]["value"] == pytest.approx(np.mean([pc[c]["tpr"]["value"] for c in "abc"]), abs=1e-6)
    assert res.metrics["race"]["tpr_difference"]["p_value"] is not None  # permutation works for macro rates too


def test_rows_missing_an_attribute_are_left_out_of_that_scope_only():
    table, logits = _random(400, seed=7)
    table.loc[:99, "race"] = None
    res = get_check("group_metrics")(n_boot=0, n_perm=0).run(_ctx(table, logits))
    assert sum(v["n"] for v in res.by_group["race"].values()) == 300
    assert sum(v["n"] for v in res.by_group["gender"].values()) == 400
    assert sum(v["n"] for v in res.by_group["gender+race"].values()) == 300


def test_group_names_containing_the_joiner_stay_distinct():
    table = pd.DataFrame({"path": "", "label": [0, 1, 0, 1], "gender": ["a & b", "a", "a & b", "a"],
                          "race": ["c", "b & c", "c", "b & c"]})
    logits = np.zeros((4, 2))
    res = get_check("group_metrics")(min_group_size=1, n_boot=0, n_perm=0).run(_ctx(table, logits, attrs=("gender", "race")))
    assert len(res.by_group["gender+race"]) == 2


def test_same_seed_same_numbers():
    table, logits = _random(800, seed=8)
    a = get_check("group_metrics")(n_boot=100, n_perm=100).run(_ctx(table, logits, seed=3)).to_dict()
    b = get_check("group_metrics")(n_boot=100, n_perm=100).run(_ctx(table, logits, seed=3)).to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a == b
