"""Page 1's next steps: what to do about each finding, with the exact `auditor` command line where one exists
(a mitigation for a gap between groups or a cue, adversarial training for near-zero robustness, a larger
budget or probe for an undecided clause). Each command is a word list the CLI parses (tests/test_decision_sheet.py
parses every one); the text shows it joined with shell quoting.
"""
from __future__ import annotations

import shlex
from typing import Any

from auditor.report._findings import clauses, failing_clauses
from auditor.report._format import as_dict, dig, metric_value, short

__all__ = ["LOW_ROBUSTNESS", "next_steps"]

LOW_ROBUSTNESS = 0.10
TRAIN_PLACEHOLDER = "TRAIN_DATA"
SYNTH_TRAIN = "synth:faces:n=2000,seed=1"


def _model(results: dict[str, Any]) -> str:
    source = dig(results, "model", "source")
    return short(source, 300) if isinstance(source, str) and source and not source.startswith("<") else "MODEL"


def _probe(results: dict[str, Any]) -> str:
    source = dig(results, "probe", "source")
    return short(source, 300) if isinstance(source, str) and source else "PROBE"


def _policy(results: dict[str, Any]) -> list[str]:
    policy = as_dict(results.get("policy"))
    name = policy.get("name") if policy.get("shipped") else policy.get("source")
    return ["--policy", short(name, 300)] if isinstance(name, str) and name and name != "default" else []


def _train(results: dict[str, Any]) -> str:
    return SYNTH_TRAIN if _probe(results).startswith("synth:") else TRAIN_PLACEHOLDER


def _step(text: str, words: list[str] | None = None) -> dict[str, Any]:
    return {"text": text, "words": words, "command": shlex.join(words) if words else None}


def _gap_attributes(results: dict[str, Any], cues: list[dict[str, Any]]) -> list[str]:
    """The attributes behind failing gap clauses (single attributes, policy order), then those of the cues' worst groups."""
    attrs: list[str] = []
    for c in failing_clauses(results):
        parts = str(c.get("metric") or "").split(".")
        if len(parts) == 5 and parts[3] not in ("overall",) and "+" not in parts[3] and parts[1] != "spurious":
            attrs.append(parts[3])
    for cue in cues:
        if cue.get("worst"):
            attrs.append(str(cue["worst"][1]))
    return list(dict.fromkeys(attrs))


def next_steps(results: dict[str, Any], cues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{"text", "words", "command"}`` per step, most important first (``words``/``command`` None: no command)."""
    results = as_dict(results)
    model, probe, train = _model(results), _probe(results), _train(results)
    steps: list[dict[str, Any]] = []
    train_note = ("" if train != TRAIN_PLACEHOLDER else
                  f" ({TRAIN_PLACEHOLDER}: labelled training images, a folder or CSV like the probe, kept apart from it)")
    if cues:
        steps.append(_step("Remove the mark from the training images (or put it on images of every class and group) "
                           "and retrain: a model that reads it will fail on images that carry it."))
    for attr in _gap_attributes(results, cues)[:2]:
        steps.append(_step(
            f"Train a copy that cannot read {attr} from its features, audit it beside this model and compare{train_note}:",
            ["auditor", "mitigate", "adversarial-debiasing", model, "--train", train, "--bias", attr, "--probe", probe,
             *_policy(results), "--out", f"debiased-{attr}"]))
    robust = dig(results, "checks", "attacks", "metrics", "overall", "robust_accuracy")
    eps = metric_value(dig(results, "checks", "attacks", "params", "reference_eps"))
    if metric_value(robust) is not None and metric_value(robust) <= LOW_ROBUSTNESS:  # type: ignore[operator]
        steps.append(_step(
            f"Robustness is near zero: train an adversarially robust copy (PGD adversarial training){train_note}:",
            ["auditor", "mitigate", "adversarial-training", model, "--train", train,
             *(["--eps", f"{eps:.4g}"] if eps is not None else []), "--probe", probe, *_policy(results),
             "--out", "adversarially-trained"]))
    undecided = [c for c in clauses(results) if c.get("result") in ("insufficient_data", "borderline")]
    if undecided:
        bigger = probe
        if probe.startswith("synth:faces"):
            n = dig(results, "probe", "n")
            bigger = f"synth:faces:n={2 * n if isinstance(n, int) and n > 0 else 2400}"
        text = ("Decide the undecided clauses with more attack and explanation images (the thorough budget)"
                + (" and a probe twice the size" if bigger != probe else "; add images of the small groups to the probe") + ":")
        steps.append(_step(text, ["auditor", "audit", model, "--probe", bigger, *_policy(results), "--budget", "thorough",
                                  "--out", "audit-thorough"]))
    if not steps:
        steps.append(_step("Nothing to fix for this policy. Keep this report with the model's record, and audit again "
                           "on real images from the intended use before relying on it there."
                           if str(probe).startswith("synth:") else
                           "Nothing to fix for this policy. Keep this report with the model's record, and audit again "
                           "when the model or its data change."))
    return steps
