"""auditor.validation: declared constraints, one error class, one message."""
from __future__ import annotations

import pytest

from auditor.errors import UsageError
from auditor.validation import Instance, Interval, Options, ParameterError, Satisfies, check, check_params, invalid


def test_interval_bounds_follow_closed():
    half_open = Interval(float, 0, 1, closed="right")
    assert check(1, half_open, param="eps", caller="pgd") == 1.0
    with pytest.raises(ParameterError, match=r"The 'eps' parameter of pgd must be a float in \(0, 1\]\. Got 0 instead\."):
        check(0, half_open, param="eps", caller="pgd")
    assert not Interval(int, None, 5, closed="neither").accepts(5)
    assert Interval(int, None, 5, closed="neither").accepts(4)


def test_interval_rejects_bools_non_finite_and_wrong_kinds():
    for bad in (True, float("nan"), float("inf"), "3", 2.5):
        with pytest.raises(ParameterError):
            check(bad, Interval(int, 1, None), param="steps", caller="pgd")
    assert check(3, Interval(int, 1, None), param="steps", caller="pgd") == 3
    assert isinstance(check(3, Interval(float, 0, None), param="lr", caller="t"), float)


def test_none_is_allowed_only_when_declared():
    assert check(None, Interval(int, 0), None, param="seed", caller="pgd") is None
    with pytest.raises(ParameterError, match="must be an int >= 0 or None"):
        check(-1, Interval(int, 0), None, param="seed", caller="pgd")
    with pytest.raises(ParameterError):
        check(None, Interval(int, 0), param="seed", caller="pgd")


def test_options_compare_type_too():
    assert check("l2", Options("linf", "l2"), param="norm", caller="pgd") == "l2"
    with pytest.raises(ParameterError, match=r"one of 'linf', 'l2'\. Got 'L3' instead"):
        check("L3", Options("linf", "l2"), param="norm", caller="pgd")
    assert not Options(1, 2).accepts(True)


def test_parse_hook_turns_strings_into_values_and_its_failures_into_the_same_error():
    def grid(text: str) -> tuple[float, ...]:
        return tuple(float(eval(p, {"__builtins__": {}})) for p in text.split(","))  # noqa: S307 - test parser

    positive = Satisfies(lambda g: len(g) > 0 and all(0 < e <= 1 for e in g), "eps values in (0, 1]")
    assert check("1/255,2/255", positive, param="eps_linf", caller="attacks", parse=grid) == (1 / 255, 2 / 255)
    with pytest.raises(ParameterError, match="eps_linf"):
        check("1/0", positive, param="eps_linf", caller="attacks", parse=grid)
    with pytest.raises(ParameterError, match="eps values in"):
        check("2", positive, param="eps_linf", caller="attacks", parse=grid)


def test_one_error_class_is_a_usage_error_and_a_value_error():
    err = invalid("x", "pgd", "a float tensor (N, C, H, W)", (3, 4))
    assert isinstance(err, UsageError) and isinstance(err, ValueError)
    assert str(err) == "The 'x' parameter of pgd must be a float tensor (N, C, H, W). Got (3, 4) instead."


def test_check_params_names_unknown_parameters():
    spec = {"steps": [Interval(int, 1)], "flag": [Instance(bool)]}
    assert check_params({"steps": 2, "flag": False}, spec, "trainer") == {"steps": 2, "flag": False}
    with pytest.raises(ParameterError, match="trainer has no parameter 'stpes'; its parameters are: steps, flag"):
        check_params({"stpes": 2}, spec, "trainer")
    with pytest.raises(ParameterError, match="must be a bool"):
        check_params({"flag": 1}, spec, "trainer")
