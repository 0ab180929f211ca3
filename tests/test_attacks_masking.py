"""Gradient-masking diagnostics (auditor.attacks.masking): hand-made numbers and hand-made models."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from auditor.attacks.masking import (
    FLAG_IDS,
    Flag,
    diagnose,
    gradient_health,
    output_determinism,
    reliable,
    summary,
)
from auditor.errors import AuditCancelled, UsageError

EPS = [2 / 255, 4 / 255, 8 / 255]
HEALTHY = {"fgsm": [0.50, 0.35, 0.20], "pgd": [0.45, 0.25, 0.05]}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


def ids(flags: list[Flag]) -> list[str]:
    return [f.id for f in flags]


def run(accuracy_by_eps=None, **kwargs) -> list[Flag]:
    kwargs.setdefault("eps", EPS)
    kwargs.setdefault("clean_accuracy", 0.9)
    return diagnose(accuracy_by_eps=HEALTHY if accuracy_by_eps is None else accuracy_by_eps, **kwargs)


# ------------------------------------------------------------------------------------------ diagnose


def test_healthy_numbers_raise_no_flag():
    flags = run(blackbox_accuracy={"square": (8 / 255, 0.30)}, unbounded_accuracy=0.0,
                gradients={"zero_share": 0.0, "nonfinite_share": 0.0, "differentiable": True, "reason": None},
                determinism={"deterministic": True, "max_abs_diff": 0.0, "prediction_changes": 0.0})
    assert flags == []
    assert reliable(flags)
    assert "No sign of gradient masking" in summary(flags)


def test_single_step_beats_iterative():
    flags = run({"fgsm": [0.50, 0.41, 0.50], "pgd": [0.45, 0.55, 0.55]}, tol=0.02)
    flag = next(f for f in flags if f.id == "single_step_beats_iterative")
    assert flag.evidence["eps"] == pytest.approx(4 / 255)
    assert (flag.evidence["single_step_accuracy"], flag.evidence["iterative_accuracy"]) == (0.41, 0.55)
    assert len(flag.evidence["cases"]) == 2  # at 4/255 and 8/255
    assert "FGSM" in flag.message and "PGD" in flag.message and "0.41 vs 0.55" in flag.message
    assert "4/255" in flag.message and "overstate" in flag.message
    assert not reliable(flags)


def test_single_step_tolerance_boundary():
    at_tol = run({"fgsm": [0.43, 0.25, 0.05], "pgd": [0.45, 0.25, 0.05]}, tol=0.02)  # exactly tol: noise
    beyond = run({"fgsm": [0.42, 0.25, 0.05], "pgd": [0.45, 0.25, 0.05]}, tol=0.02)
    assert "single_step_beats_iterative" not in ids(at_tol)
    assert "single_step_beats_iterative" in ids(beyond)
    assert "single_step_beats_iterative" not in ids(run({"fgsm": [0.42, 0.25, 0.05], "pgd": [0.45, 0.25, 0.05]},
                                                       tol=0.05))


def test_single_step_needs_both_attacks():
    assert run({"fgsm": [0.1, 0.1, 0.1]}) == []
    assert "single_step_beats_iterative" not in ids(run({"pgd": [0.45, 0.25, 0.05]}))


def test_blackbox_beats_whitebox_at_same_eps():
    flags = run(blackbox_accuracy={"square": (4 / 255, 0.10), "hsja": (8 / 255, 0.04)})
    flag = next(f for f in flags if f.id == "blackbox_beats_whitebox")
    assert flag.evidence["attack"] == "square"
    assert (flag.evidence["blackbox_accuracy"], flag.evidence["whitebox_accuracy"]) == (0.10, 0.25)
    assert len(flag.evidence["cases"]) == 1  # hsja: 0.04 vs 0.05 is within tol
    assert "square" in flag.message and "never sees the model's gradients" in flag.message
    assert "at the same eps" in flag.message


def test_blackbox_compared_with_larger_eps_only():
    # A black-box attack at a larger budget than any PGD run cannot be compared: no flag.
    assert "blackbox_beats_whitebox" not in ids(run(blackbox_accuracy={"square": (16 / 255, 0.0)}))
    # Between PGD budgets (6/255): compared with PGD at 8/255 only. 0.05 there is lower than 0.10: no flag.
    assert "blackbox_beats_whitebox" not in ids(run(blackbox_accuracy={"square": (6 / 255, 0.10)}))
    # PGD at 8/255 left 0.20 where the black-box attack at a smaller budget left 0.10: flag.
    flags = run({"fgsm": [0.5, 0.4, 0.3], "pgd": [0.45, 0.25, 0.20]}, blackbox_accuracy={"square": (6 / 255, 0.10)})
    flag = next(f for f in flags if f.id == "blackbox_beats_whitebox")
    assert flag.evidence["whitebox_eps"] == pytest.approx(8 / 255)
    assert "larger eps 8/255" in flag.message


def test_blackbox_tolerance_boundary():
    assert "blackbox_beats_whitebox" not in ids(run(blackbox_accuracy={"square": (4 / 255, 0.23)}))
    assert "blackbox_beats_whitebox" in ids(run(blackbox_accuracy={"square": (4 / 255, 0.22)}))


def test_blackbox_skipped_without_pgd():
    assert run({"fgsm": [0.5, 0.4, 0.3]}, blackbox_accuracy={"square": (4 / 255, 0.0)}) == []


def test_accuracy_not_decreasing():
    flags = run({"pgd": [0.30, 0.20, 0.45]})
    flag = next(f for f in flags if f.id == "accuracy_not_decreasing")
    assert flag.evidence["eps_low"] == pytest.approx(4 / 255) and flag.evidence["eps_high"] == pytest.approx(8 / 255)
    assert (flag.evidence["accuracy_low"], flag.evidence["accuracy_high"]) == (0.20, 0.45)
    assert "more accurate at eps 8/255" in flag.message and "larger perturbation budget" in flag.message


def test_accuracy_not_decreasing_boundary_and_small_steps():
    assert "accuracy_not_decreasing" not in ids(run({"pgd": [0.30, 0.20, 0.22]}))  # a rise of exactly tol
    assert "accuracy_not_decreasing" in ids(run({"pgd": [0.30, 0.20, 0.23]}))
    # Small steps that add up: each below tol, 0.03 in all against the lowest value seen.
    creeping = run({"pgd": [0.20, 0.215, 0.23]}, eps=EPS)
    assert "accuracy_not_decreasing" in ids(creeping)


def test_accuracy_not_decreasing_uses_clean_and_sorts_eps():
    above_clean = run({"pgd": [0.95, 0.5, 0.2]}, clean_accuracy=0.9)
    flag = next(f for f in above_clean if f.id == "accuracy_not_decreasing")
    assert flag.evidence["eps_low"] == 0.0 and "no attack at all" in flag.message
    # eps given out of order: the curve is sorted by eps, so this one is decreasing.
    assert run({"pgd": [0.05, 0.45, 0.25]}, eps=[8 / 255, 2 / 255, 4 / 255]) == []


def test_fgsm_exempt_from_monotonicity():
    assert "accuracy_not_decreasing" not in ids(run({"fgsm": [0.3, 0.2, 0.45], "pgd": [0.25, 0.15, 0.05]}))


def test_unbounded_not_zero():
    assert "unbounded_not_zero" in ids(run(unbounded_accuracy=0.11))
    assert "unbounded_not_zero" not in ids(run(unbounded_accuracy=0.1))
    flag = run(unbounded_accuracy=0.5)[0]
    assert flag.evidence["unbounded_accuracy"] == 0.5 and "should always win" in flag.message


def test_gradient_flags_from_dicts():
    def g(zero, nonfinite, differentiable=True, reason=None):
        return {"zero_share": zero, "nonfinite_share": nonfinite, "differentiable": differentiable, "reason": reason}

    assert ids(run(gradients=g(0.06, 0.0))) == ["zero_gradients"]
    assert ids(run(gradients=g(0.05, 0.0))) == []
    assert ids(run(gradients=g(0.0, 0.01))) == ["nonfinite_gradients"]
    assert ids(run(gradients=g(0.0, 0.0))) == []
    flags = run(gradients=g(None, None, False, "no grad_fn"))
    assert ids(flags) == ["not_differentiable"] and "no grad_fn" in flags[0].message


def test_determinism_flag():
    flags = run(determinism={"deterministic": False, "max_abs_diff": 0.7, "prediction_changes": 0.25})
    assert ids(flags) == ["nondeterministic_outputs"]
    assert "25%" in flags[0].message and "EOT" in flags[0].message
    assert run(determinism={"deterministic": True, "max_abs_diff": 0.0, "prediction_changes": 0.0}) == []


def test_empty_lists_and_missing_inputs():
    assert diagnose(eps=[], accuracy_by_eps={}, clean_accuracy=0.9) == []
    assert diagnose(eps=[], accuracy_by_eps={"pgd": [], "fgsm": []}, clean_accuracy=0.9,
                    blackbox_accuracy={"square": (0.03, 0.0)}) == []


def test_bad_arguments_say_what_to_do():
    with pytest.raises(UsageError, match="one accuracy per eps"):
        diagnose(eps=EPS, accuracy_by_eps={"pgd": [0.1]}, clean_accuracy=0.9)
    with pytest.raises(UsageError, match="'clean_accuracy'.*in \\[0, 1\\]"):
        diagnose(eps=EPS, accuracy_by_eps=HEALTHY, clean_accuracy=90)
    with pytest.raises(UsageError, match="'tol'"):
        run(tol=-0.1)
    with pytest.raises(UsageError, match="'blackbox_accuracy'"):
        run(blackbox_accuracy={"square": 0.3})


def test_summary_names_every_sign_once():
    flags = run({"fgsm": [0.1, 0.1, 0.1], "pgd": [0.45, 0.55, 0.6]}, unbounded_accuracy=0.6)
    text = summary(flags)
    assert set(ids(flags)) == {"single_step_beats_iterative", "accuracy_not_decreasing", "unbounded_not_zero"}
    assert text.startswith("The robustness measurement shows 3 signs of gradient masking")
    for flag_id in set(ids(flags)):
        assert FLAG_IDS[flag_id] in text
    assert text.count(".") == 1 and text.endswith(".")
    assert flags[0].as_dict()["id"] == flags[0].id


# ------------------------------------------------------------------------------------------ model probes


class SmallCNN(torch.nn.Module):
    def __init__(self, quantise: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.quantise = quantise
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Dropout(0.5),
            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
            torch.nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quantise:
            x = torch.round(x * 8) / 8  # a non-differentiable defence: gradient exactly zero
        return self.body(x)


class NoGradCNN(SmallCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.body(x)


class NaNCNN(SmallCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(torch.sqrt(x - 0.5))  # NaN for every pixel below 0.5


class DropoutCNN(SmallCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.body[:-1](x), 0.5, training=True) @ self.body[-1].weight.T  # dropout on, even in eval


def images(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, 3, (n,), generator=g)


def state(model: torch.nn.Module) -> tuple[list[bool], list[bool]]:
    return [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


def odd_state(model: torch.nn.Module) -> tuple[list[bool], list[bool]]:
    """Put the model in a mixed state that eval()/train() would not restore."""
    model.train()
    model.body[1].eval()
    model.body[0].weight.requires_grad_(False)
    return state(model)


def test_gradient_health_plain_cnn():
    model = SmallCNN()
    before = odd_state(model)
    x, y = images()
    health = gradient_health(model, x, y, batch_size=4)
    assert health["zero_share"] == 0.0 and health["nonfinite_share"] == 0.0
    assert health["differentiable"] is True and health["reason"] is None
    assert health["backward_passes"] == 6 and health["forward_passes"] == 6
    assert state(model) == before
    assert all(p.grad is None for p in model.parameters())  # no gradient left on the parameters
    assert diagnose(eps=[], accuracy_by_eps={}, clean_accuracy=0.9, gradients=health) == []


def test_gradient_health_does_not_depend_on_chunking_or_caller_grad_mode():
    model = SmallCNN()
    x, y = images()
    with torch.no_grad():
        health = gradient_health(model, x, y, batch_size=1)
    assert health == gradient_health(model, x, y, batch_size=256)


def test_gradient_health_quantised_model_is_masked():
    model = SmallCNN(quantise=True)
    before = odd_state(model)
    x, y = images()
    health = gradient_health(model, x, y)
    assert health["zero_share"] == 1.0 and health["differentiable"] is True
    assert state(model) == before
    flags = diagnose(eps=[], accuracy_by_eps={}, clean_accuracy=0.9, gradients=health)
    assert ids(flags) == ["zero_gradients"] and "100%" in flags[0].message


def test_gradient_health_no_grad_model_reports_instead_of_crashing():
    model = NoGradCNN()
    before = odd_state(model)
    x, y = images()
    health = gradient_health(model, x, y)
    assert health["differentiable"] is False and "torch.no_grad" in health["reason"]
    assert health["zero_share"] is None and health["backward_passes"] == 0
    assert state(model) == before
    assert ids(diagnose(eps=[], accuracy_by_eps={}, clean_accuracy=0.9, gradients=health)) == ["not_differentiable"]


def test_gradient_health_backward_that_raises():
    class Opaque(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

    model = SmallCNN()
    x, y = images()
    health = gradient_health(lambda t: model(Opaque.apply(t)), x, y)
    assert health["differentiable"] is False and "backward pass raised" in health["reason"]


def test_gradient_health_nan_model():
    model = NaNCNN()
    x, y = images()
    health = gradient_health(model, x, y)
    assert health["nonfinite_share"] == 1.0 and health["zero_share"] == 0.0
    assert ids(diagnose(eps=[], accuracy_by_eps={}, clean_accuracy=0.9, gradients=health)) == ["nonfinite_gradients"]


def test_gradient_health_bad_arguments():
    model = SmallCNN()
    x, y = images()
    with pytest.raises(UsageError, match="'y'.*class indices"):
        gradient_health(model, x, y + 5)
    with pytest.raises(UsageError, match="'batch_size'"):
        gradient_health(model, x, y, batch_size=0)
    with pytest.raises(UsageError, match="logits"):
        gradient_health(lambda t: t.mean((1, 2, 3)), x, y)


def test_gradient_health_progress_and_cancel():
    model = SmallCNN()
    x, y = images()
    seen = []
    gradient_health(model, x, y, batch_size=4, progress=lambda *a: seen.append(a))
    assert seen == [("gradient health", 4, 6), ("gradient health", 6, 6)]
    before = state(model)
    with pytest.raises(AuditCancelled):
        gradient_health(model, x, y, batch_size=4, cancel=lambda: True)
    assert state(model) == before


def test_output_determinism_dropout_left_on():
    model = DropoutCNN()
    before = odd_state(model)
    x, _ = images()
    rng = torch.get_rng_state()
    result = output_determinism(model, x, repeats=3)
    assert result["deterministic"] is False and result["max_abs_diff"] > 0
    assert 0.0 <= result["prediction_changes"] <= 1.0 and result["forward_passes"] == 18
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's random stream is not consumed
    assert state(model) == before
    assert ids(diagnose(eps=[], accuracy_by_eps={}, clean_accuracy=0.9, determinism=result)) == [
        "nondeterministic_outputs"]


def test_output_determinism_plain_model_in_train_mode():
    model = SmallCNN()  # nn.Dropout and BatchNorm in train mode: eval mode makes the forward deterministic
    before = odd_state(model)
    x, _ = images()
    result = output_determinism(model, x, batch_size=4)
    assert result == {"deterministic": True, "max_abs_diff": 0.0, "prediction_changes": 0.0, "repeats": 2,
                      "forward_passes": 12}
    assert state(model) == before


def test_output_determinism_nan_in_same_place_is_deterministic():
    x, _ = images()
    result = output_determinism(NaNCNN(), x)
    assert result["deterministic"] is True and not math.isnan(result["max_abs_diff"])


def test_output_determinism_bad_repeats():
    with pytest.raises(UsageError, match="'repeats'"):
        output_determinism(SmallCNN(), images()[0], repeats=1)
