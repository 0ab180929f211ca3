"""Metric entries of results.json: built by `metric`/`no_metric`, read back by `MetricEntry.read`."""
from __future__ import annotations

import math

from auditor.results import MetricEntry, metric, no_metric


def test_metric_builds_the_schema_entry_with_fields_in_order():
    entry = metric(0.5, (0.4, 0.6), p_adjusted=0.01, significant=True)
    assert entry == {"value": 0.5, "ci": [0.4, 0.6], "p_adjusted": 0.01, "significant": True}
    assert list(entry) == ["value", "ci", "p_adjusted", "significant"]
    assert metric(3) == {"value": 3, "ci": None}


def test_no_metric_says_why():
    assert no_metric("fewer than 30 images", groups=[]) == {"value": None, "ci": None, "reason": "fewer than 30 images", "groups": []}


def test_read_types_every_field_and_keeps_the_rest_as_extra():
    e = MetricEntry.read({"value": 0.2, "ci": [0.3, 0.1], "p_value": 0.04, "p_adjusted": 0.08, "significant": False,
                          "n": 120, "groups": ["a", "b"]})
    assert e == MetricEntry(0.2, (0.1, 0.3), None, 0.04, 0.08, False, 120, {"groups": ["a", "b"]})
    assert e.measured


def test_read_turns_odd_input_into_none_not_errors():
    assert MetricEntry.read({"ci": [0, 1]}) is None  # no value key: not a metric
    assert MetricEntry.read("0.5") is None
    odd = MetricEntry.read({"value": math.nan, "ci": [0, math.inf], "reason": "", "significant": "yes", "n": True})
    assert odd == MetricEntry(None, None, None, None, None, None, None, {})
    assert not odd.measured
    assert MetricEntry.read({"value": True}).value is None  # a bool is not a measurement
    assert MetricEntry.read(7) == MetricEntry(7)


def test_an_unmeasured_entry_has_no_interval_but_keeps_its_reason():
    e = MetricEntry.read(no_metric("no subject boxes"))
    assert (e.value, e.ci, e.reason) == (None, None, "no subject boxes")
