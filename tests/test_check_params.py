"""Declared check parameters: one validation idiom, budgets declared once with the parameter, help generated."""
from __future__ import annotations

import pytest

from auditor.checks import Param, get_check, list_checks
from auditor.checks.base import BUDGETS, Check
from auditor.cost import BUDGET_ORDER
from auditor.validation import ParameterError


class Sized(Check):
    name = "sized"
    params = {
        "n_images": Param(int, 0, "images to look at", low=0, high=1000, budget=(8, 16, 64)),
        "rate": Param(float, 0.5, "a share", low=0.0, high=1.0, closed="right"),
        "mode": Param(str, "fast", "how", choices=("fast", "slow")),
        "limit": Param(int, None, "an optional cap", low=1, none_ok=True),
    }
    internal_sizes = {"pool": (32, 64, 256)}


def test_a_budgeted_parameter_takes_the_budgets_value_unless_set():
    assert Sized().at_budget("quick") == {"n_images": 8, "pool": 32}
    assert Sized().at_budget("thorough") == {"n_images": 64, "pool": 256}
    assert Sized(n_images=5).at_budget("thorough") == {"n_images": 5, "pool": 256}


def test_an_unknown_budget_is_an_error_not_a_fallback():
    with pytest.raises(ParameterError, match=r"The 'budget' parameter of the audit must be one of 'quick', 'standard', "
                                             r"'thorough'\. Got 'huge' instead\."):
        Sized().at_budget("huge")


def test_help_names_the_budget_values_declared_once():
    assert Sized.params["n_images"].describe() == "images to look at (0: by --budget: quick 8, standard 16, thorough 64)"
    assert Sized.params["rate"].describe() == "a share"


@pytest.mark.parametrize("params, text", [
    ({"rate": 0}, r"The 'rate' parameter of sized must be a float in \(0\.0, 1\.0\]\. Got 0 instead\."),
    ({"rate": True}, r"'rate' parameter of sized must be a float"),
    ({"mode": "medium"}, r"The 'mode' parameter of sized must be one of 'fast', 'slow'\. Got 'medium' instead\."),
    ({"limit": 0}, r"The 'limit' parameter of sized must be an int >= 1 or None\. Got 0 instead\."),
    ({"n_images": 1001}, r"The 'n_images' parameter of sized must be an int in \[0, 1000\]\. Got 1001 instead\."),
    ({"n_image": 3}, r"sized has no parameter 'n_image'; its parameters are: n_images, rate, mode, limit"),
])
def test_a_bad_parameter_is_refused_when_the_check_is_built_with_the_one_message(params, text):
    with pytest.raises(ParameterError, match=text):
        Sized(**params)


def test_values_are_stored_in_their_canonical_form():
    cfg = Sized(rate=1, limit=None).config
    assert cfg == {"n_images": 0, "rate": 1.0, "mode": "fast", "limit": None} and isinstance(cfg["rate"], float)


def test_the_budgets_are_one_tuple_shared_by_the_checks_and_the_cost_plan():
    assert BUDGET_ORDER is BUDGETS == ("quick", "standard", "thorough")


@pytest.mark.parametrize("cls", list_checks(), ids=lambda c: c.name)
def test_every_registered_check_builds_with_its_defaults_at_every_budget(cls):
    check = cls()
    for budget in BUDGETS:
        sizes = check.at_budget(budget)
        assert all(isinstance(v, int) and v > 0 for v in sizes.values()), sizes
    assert all(spec.validate(name, cls.name, spec.default) is not None or spec.none_ok
               for name, spec in cls.params.items())


def test_the_shipped_budgets_grow_from_quick_to_thorough():
    for name in ("attacks", "explanations", "spurious"):
        quick, standard, thorough = (get_check(name)().at_budget(b) for b in BUDGETS)
        assert all(quick[k] <= standard[k] <= thorough[k] for k in quick), name


def test_a_result_counts_the_passes_its_methods_report():
    from types import SimpleNamespace

    from auditor.checks import CheckResult

    result = CheckResult().count({"forward_passes": 3, "backward_passes": 1}, SimpleNamespace(forward_passes=2), forward=1)
    assert (result.forward_passes, result.backward_passes) == (6, 1)
