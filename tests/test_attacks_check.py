"""The attacks check on the clean sample model, on a deliberately masked copy of it and on a copy that
gives no gradient: robust accuracy per group adds up, settings are explicit, masking is flagged where
it is planted and not elsewhere, and a model without gradients still gets the black-box attacks."""
from __future__ import annotations

import pytest
import torch

from auditor.checks.attacks import Attacks, parse_eps
from auditor.validation import ParameterError
from auditor.checks.base import CheckContext
from auditor.errors import UsageError
from auditor.models import load_model
from tests.conftest import SAMPLE_MODELS, check_context

SMALL = {"n_images": 48, "steps": 5, "n_blackbox": 6, "max_queries": 40, "min_group_size": 5}


class Quantised(torch.nn.Module):
    """The clean model behind an input quantisation step: the input gradient is zero everywhere."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 8) / 8)


class NoGradient(Quantised):
    """The clean model run under no_grad: answers, but no gradient at all."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.inner(x)


def _context(module: torch.nn.Module, n: int = 160) -> CheckContext:
    return check_context(module, n)


@pytest.fixture(scope="module")
def clean_model() -> torch.nn.Module:
    return load_model(str(SAMPLE_MODELS["clean_cnn"]), device="cpu").module


@pytest.fixture(scope="module")
def plain(clean_model):
    ctx = _context(clean_model)
    return ctx, Attacks(**SMALL).run(ctx)


def test_attack_settings_are_explicit(plain):
    _, result = plain
    settings = result.metrics["overall"]["settings"]
    pgd = [s for s in settings if s["attack"] == "pgd"]
    assert {s["norm"] for s in pgd} == {"linf", "l2"}
    for s in pgd:
        assert s["steps"] == 5 and "step_size" in s and s["restarts"] == 1 and s["library"]
    bb = result.metrics["overall"]["blackbox"]
    assert bb["square"]["settings"]["library"] == "adversarial-robustness-toolbox"
    assert bb["square"]["queries"] <= SMALL["n_blackbox"] * SMALL["max_queries"]
    assert bb["queries"] >= bb["square"]["queries"] + bb["hopskipjump"]["queries"]


def test_robust_accuracy_falls_with_eps_and_per_group_numbers_add_up(plain):
    ctx, result = plain
    overall = result.metrics["overall"]
    pgd = overall["curves"]["linf"]["pgd"]
    assert all(a >= b for a, b in zip(pgd, pgd[1:]))
    assert overall["robust_accuracy"]["value"] <= overall["clean_accuracy"]["value"]
    ref = result.params["eps_linf"].index(result.params["reference_eps"])
    assert pgd[ref] == pytest.approx(overall["robust_accuracy"]["value"], abs=1e-6)
    groups = result.by_group["race"]
    assert sum(g["n"] for g in groups.values()) == SMALL["n_images"]
    hits = sum(g["robust_accuracy"]["value"] * g["n"] for g in groups.values())
    assert hits == pytest.approx(overall["robust_accuracy"]["value"] * SMALL["n_images"], abs=1e-4)
    for g in groups.values():
        assert g["curves"]["linf"]["pgd"][ref] == pytest.approx(g["robust_accuracy"]["value"], abs=1e-6)
        success = g["attack_success_rate"]
        if success["value"] is not None:  # flipped share of the correctly classified: robust = clean x (1 - success)
            lo, hi = success["ci"]
            assert lo <= success["value"] <= hi
    assert "robust_accuracy_difference" in result.metrics["race"]
    assert "gender+race" in result.metrics


def test_a_plain_model_raises_no_masking_flag(plain):
    masking = plain[1].metrics["overall"]["masking"]
    assert masking["reliable"] and masking["flags"] == []
    assert plain[1].metrics["overall"]["reliable"]["value"] == 1
    assert masking["unbounded_accuracy"] <= 0.1


def test_a_quantised_model_is_flagged_as_masking_its_gradients(clean_model):
    result = Attacks(**SMALL).run(_context(Quantised(clean_model)))
    overall = result.metrics["overall"]
    assert overall["reliable"]["value"] == 0
    assert "zero_gradients" in {f["id"] for f in overall["masking"]["flags"]}
    assert "cannot be trusted" in overall["masking"]["summary"] or "overstate" in overall["masking"]["summary"]


def test_a_model_without_gradients_still_gets_the_black_box_attacks(clean_model):
    result = Attacks(**SMALL).run(_context(NoGradient(clean_model)))
    overall = result.metrics["overall"]
    assert "not_differentiable" in overall and overall["robust_accuracy"]["value"] is None
    assert overall["blackbox"]["square"]["n"] == SMALL["n_blackbox"]
    assert "not_differentiable" in {f["id"] for f in overall["masking"]["flags"]}


@pytest.mark.parametrize("text", ["", "0", "2", "a/b", "1/0", "-1/255"])
def test_a_bad_eps_grid_is_refused_with_the_fix_when_the_check_is_built(text):
    with pytest.raises(ParameterError, match=r"The 'eps_linf' parameter of attacks must be a comma-separated list of eps "
                                             r"values in \(0, 1\] \(fractions like 8/255 allowed\)\. Got '.*' instead\."):
        Attacks(eps_linf=text)
    with pytest.raises(ValueError, match="eps_linf.*fractions like 8/255"):
        parse_eps(text, "linf", "eps_linf")


def test_an_eps_grid_is_parsed_once_when_the_check_is_built():
    assert Attacks(eps_l2="1.0, 0.5").config["eps_l2"] == [0.5, 1.0]
    assert Attacks(reference_eps=[8 / 255]).config["reference_eps"] == [8 / 255]


def test_eps_grids_read_fractions():
    assert parse_eps("8/255, 1/255", "linf", "eps_linf") == [1 / 255, 8 / 255]
    assert parse_eps("2.5", "l2", "eps_l2") == [2.5]
