"""The options of the command line: value types, and the options `audit` and `mitigate` share, each declared
once with one help text (`compose` stacks them onto a command)."""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence, TypeVar

import click

from auditor.checks.base import BUDGETS

__all__ = ["AUDIT_OPTIONS", "BUDGETS", "CSV", "MITIGATIONS", "MODEL_OPTIONS", "RUN_OPTIONS", "CheckParam", "Minutes",
           "check_params", "command_line", "compose", "declared", "output_options"]

F = TypeVar("F", bound=Callable[..., Any])
MITIGATIONS = ("adversarial-debiasing", "adversarial-training", "distillation")  # auditor.mitigate.run.METHODS


# --- option types ---------------------------------------------------------------------------------------

class Csv(click.ParamType):
    """``a,b,c`` -> ``["a", "b", "c"]`` (blanks dropped)."""

    name = "a,b,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[str]:
        if isinstance(value, (list, tuple)):
            return list(value)
        return [t.strip() for t in str(value).split(",") if t.strip()]


class CheckParam(click.ParamType):
    """``CHECK.PARAM=VALUE`` with VALUE parsed as YAML (numbers, booleans, strings)."""

    name = "CHECK.PARAM=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str, Any]:
        if isinstance(value, tuple):
            return value
        import yaml

        text = str(value)
        if "=" not in text or "." not in text.split("=", 1)[0]:
            self.fail(f"{text!r} is not CHECK.PARAM=VALUE (e.g. group_metrics.min_group_size=50)", param, ctx)
        key, raw = text.split("=", 1)
        check, name = key.split(".", 1)
        return check, name, yaml.safe_load(raw)


class Minutes(click.ParamType):
    """``--max-minutes``: a number of minutes > 0."""

    name = "N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            minutes = float(value)
        except (TypeError, ValueError):
            minutes = float("nan")
        if not minutes > 0 or minutes == float("inf"):
            self.fail(f"must be a number of minutes > 0, e.g. 10; got {value!r}", param, ctx)
        return minutes


CSV = Csv()


def check_params(given: Sequence[tuple[str, str, Any]]) -> dict[str, dict[str, Any]]:
    """``--param CHECK.PARAM=VALUE`` options grouped by check."""
    params: dict[str, dict[str, Any]] = {}
    for check, param, value in given:
        params.setdefault(check, {})[param] = value
    return params


# --- options audit and mitigate share: declared once, one help text each -------------------------------

def compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator from many, applied so the options list in the order given."""
    def apply(f: F) -> F:
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


MODEL_OPTIONS = compose(
    click.option("--arch", help="architecture for a state_dict: torchvision:NAME or package.module:factory"),
    click.option("--weights", type=click.Path(dir_okay=False), help="state_dict file for torchvision:NAME"),
    click.option("--num-classes", type=int, help="number of model outputs, when the weights do not tell"),
    click.option("--trust-pickle", is_flag=True, help="allow loading a full pickle (runs code from the file)"),
    # What a model spec would say, as flags; a flag beats the spec; what neither says is assumed and verified.
    click.option("--classes", help="class names in output order, e.g. male,female (a flag beats the model spec)"),
    click.option("--positive-class", help="the positive class (a name or an output index)"),
    click.option("--mean", help="normalisation mean R,G,B applied to [0,1] pixels, e.g. 0.485,0.456,0.406"),
    click.option("--std", help="normalisation std R,G,B, e.g. 0.229,0.224,0.225"),
    click.option("--input-size", help="input side in pixels (224) or H,W"),
    click.option("--target", help="probe column to use as the label (e.g. gender)"),
)

AUDIT_OPTIONS = compose(
    click.option("--probe", default="synth:faces", show_default=True, type=click.Path(),
                 help="the probe the audit runs on (mitigate: both audits): a folder or CSV, or "
                      "synth:faces[:n=N,seed=S,size=PX]"),
    click.option("--policy", envvar="AUDITOR_POLICY", show_envvar=True, type=click.Path(),
                 help="policy YAML file or shipped policy name (default, strict-ci, eu-ai-act-high-risk; "
                      "default: default)"),
    click.option("--checks", type=CSV, help="comma-separated checks to run (default: all; see `auditor checks`). A partial "
                 "run gets a verdict on what ran: clauses of the other checks are not_run and do not count (the summary "
                 "line names them); leaving out a check the policy requires (default: group_metrics) makes the verdict "
                 "inconclusive"),
    click.option("--param", "params", type=CheckParam(), multiple=True,
                 help="set a check parameter, e.g. group_metrics.min_group_size=50 (repeatable)"),
    click.option("--budget", type=click.Choice(BUDGETS), default="standard", show_default=True, envvar="AUDITOR_BUDGET",
                 show_envvar=True, help="how much work each check does"),
    click.option("--device", default="auto", show_default=True, envvar="AUDITOR_DEVICE", show_envvar=True,
                 help="auto, cpu, cuda or cuda:N"),
    click.option("--seed", type=int, default=0, show_default=True, help="seed of every random draw"),
    click.option("--batch-size", type=int, default=64, show_default=True, help="images per batch"),
)

RUN_OPTIONS = compose(  # how a long run reports and uses the machine
    click.option("-q", "--quiet", is_flag=True, envvar="AUDITOR_QUIET", show_envvar=True,
                 help="no progress and no cost plan on stderr (errors and the summary line still print)"),
    click.option("--threads", type=int, metavar="N", envvar="AUDITOR_THREADS", show_envvar=True,
                 help="CPU threads for torch (default: torch's, usually the cores)"),
)


def output_options(out: str, formats: str) -> Callable[[F], F]:
    """``--out``/``--force``/``--format``, whose defaults differ between audit and mitigate."""
    return compose(
        click.option("--out", default=out, show_default=True, envvar="AUDITOR_OUT", show_envvar=True,
                     type=click.Path(file_okay=False),
                     help="output folder; an earlier run there is refused without --force (an audit's folder is "
                          "written whole and swapped in when the audit ends)"),
        click.option("--force", is_flag=True,
                     help="replace the earlier run in --out (an audit's whole: its files the new run does not write go too)"),
        click.option("--format", "formats", type=CSV, default=formats, show_default=True, envvar="AUDITOR_FORMAT",
                     show_envvar=True, help="comma-separated report formats: json,html,pdf,md,junit (results.json is "
                                            "always written; pdf needs weasyprint and Pango)"),
    )


def declared(o: dict[str, Any]) -> dict[str, Any]:
    """The model flags as typed `AuditConfig`/`MitigateConfig` fields (bad values exit 2 with the fix)."""
    from auditor.models import parse_declared  # imported when run: keeps `auditor checks` fast (no torch)

    d = parse_declared(classes=o["classes"], positive_class=o["positive_class"], mean=o["mean"], std=o["std"],
                       input_size=o["input_size"])
    return {"classes": d.classes, "positive_class": d.positive_class, "mean": d.mean, "std": d.std,
            "input_size": d.input_size}


def command_line(ctx: click.Context) -> str:
    """The command line as typed (recorded in results.json)."""
    return "auditor " + " ".join(ctx.find_root().meta.get("auditor.argv", sys.argv[1:]))
