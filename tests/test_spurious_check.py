"""The spurious check end to end on the sample models: it finds a planted cue it is not told about,
locates and confirms it, and finds nothing on the model trained without one."""
from __future__ import annotations

import base64
import dataclasses
import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from auditor.api import AuditConfig, run_audit
from auditor.checks import get_check
from auditor.checks.base import CheckContext, Predictions
from auditor.checks.sampling import subject_masks
from auditor.policy import evaluate_policy, load_policy, resolve_policy_path
from probes import open_probe
from tests.conftest import ROOT

PROBE = "synth:faces:n=400"
STICKER_PROBE = "synth:faces:n=400,cue=sticker"


def _audit(model: str, probe: str, **params) -> dict:
    policy = ROOT / "tests" / "any_check_policy.yaml"  # the spurious check alone: the shipped policies require group_metrics
    cfg = AuditConfig(model=str(ROOT / "sample_models" / model / "model.yaml"), probe=probe, checks=["spurious"],
                      check_params={"spurious": params}, budget="quick", device="cpu", seed=0, out_dir=None,
                      policy=str(policy))
    return run_audit(cfg).results


@pytest.fixture(scope="module")
def shortcut() -> dict:
    return _audit("shortcut_cnn", PROBE)


@pytest.fixture(scope="module")
def sticker() -> dict:
    return _audit("sticker_cnn", STICKER_PROBE)


@pytest.fixture(scope="module")
def clean() -> dict:
    return _audit("clean_cnn", PROBE, figures=False)


def _overlap(a, b) -> float:
    """Share of box ``b`` covered by box ``a`` (x0, y0, x1, y1, end exclusive)."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((b[2] - b[0]) * (b[3] - b[1]))


def _finding_at(results: dict, cue_box) -> dict:
    findings = results["checks"]["spurious"]["metrics"]["findings"]
    hits = [f for f in findings if _overlap(f["box"], cue_box) >= 0.5]
    assert hits, f"no finding covers the planted cue {cue_box}: {[f['box'] for f in findings]}"
    return hits[0]


def _assert_confirmed(f: dict) -> None:
    assert f["confirmed"] and not f["on_subject"] and f["off_subject"] >= 0.9
    assert f["p_value"] < 0.05
    assert max(f["removal_flip_rate"] - f["control_removal_flip_rate"],
               f["transplant_flip_rate"] - f["control_transplant_flip_rate"]) >= 0.15


def test_the_watermark_shortcut_is_found_top_left_and_confirmed(shortcut):
    cue = open_probe(PROBE).cue_box  # (3, 3, 10, 10): top-left, off the face
    f = _finding_at(shortcut, cue)
    _assert_confirmed(f)
    assert f["class"] == "smiling" and f["box"][2] <= 32 and f["box"][3] <= 32
    overall = shortcut["checks"]["spurious"]["metrics"]["overall"]
    assert overall["n_off_subject_findings"]["value"] >= 1


def test_a_different_cue_at_a_different_place_is_found_too(sticker):
    cue = open_probe(STICKER_PROBE).cue_box  # an orange disc, bottom-right
    f = _finding_at(sticker, cue)
    _assert_confirmed(f)
    assert f["box"][0] >= 32 and f["box"][1] >= 32


def test_the_model_trained_without_a_cue_has_no_finding(clean):
    m = clean["checks"]["spurious"]["metrics"]
    assert m["findings"] == [] and m["overall"]["n_findings"]["value"] == 0
    assert m["summary"].startswith("No cue")
    # what it does rely on lies on the subject: tested, and not reported as a cue
    assert all(c["on_subject"] or not c["confirmed"] for c in m["candidates"])


def test_findings_carry_per_group_flip_rates(sticker):
    f = _finding_at(sticker, open_probe(STICKER_PROBE).cue_box)
    for attr in ("gender", "age", "race"):
        groups = f["by_group"][attr]
        assert sum(g["n_removal"] for g in groups.values()) == f["n_removal"]
        assert sum(g["n_transplant"] for g in groups.values()) == f["n_transplant"]


def test_evidence_maps_follow_the_contract(shortcut):
    spur = shortcut["checks"]["spurious"]
    maps = spur["metrics"]["evidence_maps"]
    assert set(maps) == set(shortcut["model"]["classes"])
    for grid in maps.values():
        assert len(grid) == 8 and all(len(row) == 8 for row in grid)
        assert sum(map(sum, grid)) == pytest.approx(1.0, abs=1e-4)
    watermark_cells = np.array(maps["smiling"])[:2, :2].sum()
    assert watermark_cells > 4 * 4 / 64  # at least 4x a uniform share sits in the top-left quarter-by-quarter
    for attr, groups in spur["by_group"].items():
        assert sum(g["n"] for g in groups.values()) == spur["metrics"]["overall"]["n_images"]["value"]
        share = next(iter(groups.values()))["off_subject_share"]
        assert share["ci"][0] <= share["value"] <= share["ci"][1]


def test_masks_beat_a_random_pixel_order_on_the_deletion_score(sticker):
    score = sticker["checks"]["spurious"]["metrics"]["overall"]["deletion_score"]
    assert score["value"] < score["random_baseline"]


def test_figures_are_inline_pngs_and_each_finding_names_its_own(sticker):
    spur = sticker["checks"]["spurious"]
    assert {"evidence_maps", "examples"} <= set(spur["figures"])
    for f in spur["metrics"]["findings"]:
        assert f["figure"] in spur["figures"]
    for fig in spur["figures"].values():
        head, data = fig["data_uri"].split(",", 1)
        assert head == "data:image/png;base64"
        assert Image.open(io.BytesIO(base64.b64decode(data))).format == "PNG"


def test_the_default_policy_blocks_an_off_subject_cue_and_passes_none(sticker, clean):
    policy = load_policy(resolve_policy_path("default"))
    policy = dataclasses.replace(policy, clauses=tuple(c for c in policy.clauses if c.id in ("off-subject-cue", "fixed-place-cue")),
                                 requires=())  # these results hold the spurious check alone
    assert len(policy.clauses) == 2
    assert evaluate_policy(policy, sticker)["verdict"] == "fail"
    assert evaluate_policy(policy, clean)["verdict"] == "pass"


# -- odd input: reported, not hidden -----------------------------------------------------------------------


class _Always(torch.nn.Module):
    """Predicts class 0 for every image (class 1 is never predicted)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.mean(dim=(1, 2, 3))
        return torch.stack([z + 10.0, z - 10.0], dim=1)


def _context(module, probe, **kw) -> CheckContext:
    from auditor.models import LoadedModel

    model = LoadedModel(module=module.eval(), source="test", form="module", sha256="0")
    table = probe.table
    return CheckContext(model=model, probe=probe, predictions=Predictions(
        index=np.arange(len(table)), logits=np.tile([[1.0, 0.0]], (len(table), 1)),
        y_true=table["label"].to_numpy(), y_pred=np.zeros(len(table), dtype=np.int64)),
        classes=list(probe.classes), positive_class=1, input_size=(64, 64), device=torch.device("cpu"), seed=0,
        budget="quick", attributes=list(probe.attributes), **kw)


def test_a_class_no_image_is_predicted_as_is_reported_and_nothing_breaks():
    probe = open_probe("synth:faces:n=40")
    result = get_check("spurious")(n_images=12, steps=3, figures=False).run(_context(_Always(), probe))
    m = result.metrics
    assert m["not_predicted"] == [probe.classes[1]] and m["evidence_maps"][probe.classes[1]] is None
    assert m["overall"]["n_images"]["value"] == 12


def test_a_probe_without_subject_boxes_still_gets_the_consistency_analysis():
    probe = open_probe("synth:faces:n=40")
    probe.table = probe.table.drop(columns=["subject_box"])
    result = get_check("spurious")(n_images=12, steps=3, figures=False).run(_context(_Always(), probe))
    overall = result.metrics["overall"]
    assert overall["off_subject_share"]["value"] is None and "subject" in overall["off_subject_share"]["reason"]
    assert overall["n_off_subject_findings"]["value"] is None  # not measurable: never a 0 that passes a gate
    assert overall["n_off_subject_findings"]["reason"] and overall["max_consistency"]["value"] is not None
    assert all(g["off_subject_share"]["value"] is None for g in result.by_group["gender"].values())


def test_masks_that_do_not_converge_are_counted_not_hidden():
    probe = open_probe("synth:faces:n=40")
    result = get_check("spurious")(n_images=12, steps=1, figures=False).run(_context(_Always(), probe))
    nc = result.metrics["overall"]["not_converged"]
    assert nc["of"] == 12 and nc["n"] == 12 and nc["value"] == 1.0  # a +-10 logit margin survives one step


def test_a_subject_mask_png_is_used_where_the_probe_has_one(tmp_path):
    probe = open_probe("synth:faces:n=40")
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255  # "the subject" is the left half
    Image.fromarray(mask).save(tmp_path / "m.png")
    probe.root = tmp_path
    probe.table["subject_mask"] = pd.Series(["m.png"] * len(probe.table), dtype=object)
    subjects = subject_masks(_context(_Always(), probe), np.arange(3), (64, 64))
    assert (subjects[:, :, :32] == 1).all() and (subjects[:, :, 32:] == 0).all()
