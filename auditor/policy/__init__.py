"""Policies: YAML files of threshold clauses (metric path, operator, threshold, severity, regulation)
and regression clauses (allowed worsening against a baseline results.json), evaluated against
results.json to give a verdict: ``pass``, ``fail`` or ``inconclusive``.

`load_policy` reads and validates a policy (a path, a shipped name, or None for the shipped default,
all in ``auditor/policy/shipped/``); `evaluate_policy` gives the ``policy`` block of results.json,
with regression clauses compared against a `Baseline` from `load_baseline`. The file format is
documented in the README (Policies).

Inside: ``model`` (a leaf: `Clause`, `Regression`, `Policy`, the operators), ``_load`` (reading and
validating), ``_clauses`` (threshold clauses), ``_regressions`` (regression clauses against a
baseline), ``_verdict`` (the verdict).
"""
from __future__ import annotations

from auditor.policy._load import default_policy_path, load_policy, resolve_policy_path, shipped_policies
from auditor.policy._regressions import Baseline, load_baseline, one_sided_p, se_from_interval
from auditor.policy._verdict import evaluate_policy, required_left_out
from auditor.policy.model import CHECK_DEFAULTS, OPERATORS, RESULTS, Clause, Policy, Regression

__all__ = [
    "Clause", "Regression", "Policy", "load_policy", "default_policy_path", "shipped_policies",
    "resolve_policy_path", "required_left_out", "evaluate_policy", "load_baseline", "Baseline", "OPERATORS",
    "RESULTS", "CHECK_DEFAULTS", "se_from_interval", "one_sided_p",
]
