"""The cost plan made before the work: each check's planned passes agree with what it then sends
through the model, the CLI prints the plan, --max-minutes lowers budgets to fit or stops with exit 2,
and results.json records planned against actual."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from torch import nn

from auditor.checks import get_check
from auditor.checks.base import PassPlan, PlanContext
from auditor.cli import main
from auditor.cost import PassCounter, Throughput, fit_to_minutes, format_plan, measure_throughput, plan_audit
from auditor.errors import UsageError
from tests.conftest import SAMPLE_MODELS, SMALL_CHECKS, SMALL_PARAMS, SMALL_PROBE

CHECKS = ("group_metrics", "spurious", "attacks", "explanations")


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, str]:
    out = tmp_path_factory.mktemp("cost") / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["audit", str(SAMPLE_MODELS["clean_cnn"]), "--probe", SMALL_PROBE, *SMALL_CHECKS,
                     "--param", "group_metrics.n_boot=50", "--format", "json", "--out", str(out)])
    return code, json.loads((out / "results.json").read_text()), err.getvalue()


def test_the_cli_prints_the_plan_before_the_work(audited):
    _, _, err = audited
    assert "cost plan on cpu" in err  # stderr; the verdict line goes to stdout after the work
    for name in CHECKS:
        assert any(line.strip().startswith(name) for line in err.splitlines())


def test_each_check_plans_the_passes_it_then_makes(audited):
    _, results, _ = audited
    cost = results["cost"]
    for name in CHECKS:
        planned, actual = cost["planned"][name], cost["actual"][name]
        assert planned["budget"] == "quick"
        if name == "group_metrics":  # it reads the predictions: no pass of its own
            assert planned["forward"] == actual["forward"] == 0
            continue
        # attacks plan an upper bound (they stop early on fooled or misclassified images); the others
        # depend on where the evidence lies: within a factor 2 of what they did, never an order off
        assert 0.5 * planned["forward"] <= actual["forward"] <= planned["forward"] * (1.0 if name == "attacks" else 2.0), name
        assert 0.5 * planned["backward"] <= actual["backward"] <= max(planned["backward"] * 2.0, 1), name
        assert actual["seconds"] > 0 and planned["seconds"] > 0
    assert cost["actual"]["predict"]["forward"] == results["probe"]["n"] - results["probe"]["n_skipped"]
    assert cost["throughput"]["forward_images_per_s"] > 0 and cost["planned_seconds"] > 0


def test_a_larger_budget_plans_more_passes():
    ctx = PlanContext(model=None, n_rows=1200, n_classes=2, input_size=(64, 64), budget="quick", batch_size=64)
    for name in ("spurious", "attacks", "explanations"):
        check = get_check(name)()
        sizes = [check.plan(PlanContext(**{**ctx.__dict__, "budget": b})) for b in ("quick", "standard", "thorough")]
        assert sizes[0].forward < sizes[1].forward < sizes[2].forward, name
        assert sizes[0].backward <= sizes[1].backward <= sizes[2].backward, name


def test_a_parameter_changes_the_plan_as_it_changes_the_work():
    ctx = PlanContext(model=None, n_rows=1200, n_classes=2, input_size=(64, 64), budget="standard")
    small = get_check("attacks")(**SMALL_PARAMS["attacks"]).plan(ctx)
    assert small.forward < get_check("attacks")().plan(ctx).forward
    assert get_check("attacks")(blackbox=False).plan(ctx).forward < get_check("attacks")().plan(ctx).forward


_SLOW = Throughput(forward=50.0, backward=20.0, batch_size=64, device="cpu")


def _checks() -> dict:
    return {n: get_check(n)() for n in CHECKS}


def test_max_minutes_lowers_the_costliest_budgets_first_and_says_so():
    ctx = PlanContext(model=None, n_rows=1200, n_classes=2, input_size=(64, 64), budget="thorough")
    full = plan_audit(_checks(), ctx, _SLOW)
    quick = plan_audit(_checks(), PlanContext(**{**ctx.__dict__, "budget": "quick"}), _SLOW)
    limit = (quick.seconds + full.seconds) / 2 / 60
    fitted = fit_to_minutes(_checks(), ctx, _SLOW, limit)
    assert fitted.seconds <= 60 * limit < full.seconds
    assert fitted.shrunk and all("thorough -> " in s for s in fitted.shrunk)
    assert "--max-minutes" in format_plan(fitted) and "lowered" in format_plan(fitted)
    roomy = fit_to_minutes(_checks(), ctx, _SLOW, 2 * full.seconds / 60)
    assert roomy.shrunk == [] and "fits at the chosen budgets" in format_plan(roomy)


def test_max_minutes_too_short_even_at_the_lowest_budgets_is_a_usage_error():
    ctx = PlanContext(model=None, n_rows=1200, n_classes=2, input_size=(64, 64), budget="standard")
    with pytest.raises(UsageError, match=r"--max-minutes 0.01 is too short: .* attacks \(quick\)"):
        fit_to_minutes(_checks(), ctx, _SLOW, 0.01)


def test_the_cli_exits_2_with_the_plan_and_writes_nothing_when_it_cannot_fit(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["audit", str(SAMPLE_MODELS["clean_cnn"]), "--probe", SMALL_PROBE, "--max-minutes", "0.001",
                 "--format", "json", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "is too short" in err and "spurious (quick)" in err
    assert not (out / "results.json").exists()


@pytest.mark.parametrize("value", ["0", "-3", "soon", "inf"])
def test_a_bad_max_minutes_is_refused_naming_it(tmp_path, capsys, value):
    code = main(["audit", str(SAMPLE_MODELS["clean_cnn"]), "--probe", SMALL_PROBE, "--max-minutes", value])
    assert code == 2 and "--max-minutes" in capsys.readouterr().err


def test_the_pass_counter_counts_images_forward_and_backward():
    module = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    stages: list[tuple[int, int]] = []
    with PassCounter(module, "s", total=20, progress=lambda _s, d, t: stages.append((d, t))) as counted:
        with torch.no_grad():
            module(torch.rand(5, 3, 2, 2))
        x = torch.rand(3, 3, 2, 2, requires_grad=True)
        module(x).sum().backward()
    assert (counted.forward, counted.backward) == (8, 3)
    assert stages[0] == (0, 20) and stages[-1] == (20, 20) and all(d < 20 for d, _ in stages[1:-1])


def test_throughput_is_measured_and_the_model_left_as_found():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).train()
    t = measure_throughput(module, torch.rand(4, 3, 16, 16), "cpu", batch_size=8)
    assert t.forward > 0 and t.backward > 0 and t.batch_size == 8 and t.differentiable
    assert module.training and all(p.requires_grad and p.grad is None for p in module.parameters())
    assert t.seconds(PassPlan(100, 40)) == pytest.approx(40 / t.backward + 60 / t.forward)
