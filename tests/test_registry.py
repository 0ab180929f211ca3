"""The check registry: lookup, listing, duplicates."""
from __future__ import annotations

import pytest

from auditor.checks import Check, check_names, get_check, list_checks, register_check
from auditor.errors import InternalError, UsageError


def test_group_metrics_is_registered():
    assert "group_metrics" in check_names()
    assert get_check("group_metrics").name == "group_metrics"


def test_unknown_check_suggests_the_closest_name():
    with pytest.raises(UsageError, match="did you mean 'group_metrics'"):
        get_check("group_metric")


def test_list_checks_filters_with_fnmatch():
    assert [c.name for c in list_checks("group_*")] == ["group_metrics"]
    assert list_checks("nothing*") == []


def test_duplicate_name_is_an_error():
    class Dup(Check):
        name = "group_metrics"

    with pytest.raises(InternalError, match="already registered"):
        register_check(Dup)
