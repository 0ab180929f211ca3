"""Every registered check on every sample model: JSON-serialisable, deterministic, model untouched."""
from __future__ import annotations

import json

import pytest
import torch

from auditor.api import AuditConfig, run_audit
from auditor.checks import check_names
from auditor.results import to_json
from tests.conftest import ROOT, SMALL_PARAMS, SMALL_PROBE


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("check", check_names())
def test_check_is_serialisable_deterministic_and_leaves_the_model_as_found(check, sample_model, monkeypatch):
    seen = {}
    from auditor.api import _config as audit_config  # where AuditConfig loads its model

    real_load = audit_config.load_model

    def spy(*a, **k):
        m = real_load(*a, **k)
        seen.setdefault("models", []).append((m, _state(m.module), m.module.training))
        return m

    monkeypatch.setattr(audit_config, "load_model", spy)
    cfg = AuditConfig(model=str(sample_model), probe=SMALL_PROBE, checks=[check], budget="quick", device="cpu", seed=7,
                      out_dir=None, check_params={check: SMALL_PARAMS.get(check, {})},
                      policy=str(ROOT / "tests" / "any_check_policy.yaml"))  # one check alone: no required checks
    first = run_audit(cfg).results["checks"][check]
    second = run_audit(cfg).results["checks"][check]
    assert first["status"] == "ok", first["error"]
    json.loads(to_json(first))
    first.pop("seconds"), second.pop("seconds")
    assert first == second
    for model, before, training in seen["models"]:
        after = model.module.state_dict()
        assert model.module.training == training
        assert all(torch.equal(before[k], after[k]) for k in before)
