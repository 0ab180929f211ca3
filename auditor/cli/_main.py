"""The `auditor` click group and its commands, and `main`, which maps every error to an exit code."""
from __future__ import annotations

import logging
import sys
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import click

from auditor import __version__
from auditor.cli._options import (AUDIT_OPTIONS, CSV, MITIGATIONS, MODEL_OPTIONS, RUN_OPTIONS, Minutes, check_params,
                                  command_line, declared, output_options)
from auditor.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, AuditorError, UsageError
from auditor.progress import make_reporter

__all__ = ["main", "cli", "EXIT_INTERRUPTED"]

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130


def _version() -> str:
    try:
        return metadata.version("auditor")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return __version__


# --- the group: parsing, and the exit code of every error -------------------------------------------------

class _Auditor(click.Group):
    """Keeps the arguments (for results.json's ``command``) and maps errors to exit codes like `main` always has:
    an `AuditorError` its own code with one line, Ctrl-C 130, anything else (a bug) the traceback and 3."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        argv = list(args)
        ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta["auditor.argv"] = argv
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except AuditorError as exc:
            print(f"auditor: error: {exc}", file=sys.stderr)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            print("auditor: interrupted", file=sys.stderr)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # a bug: say so, with the traceback for the report
            traceback.print_exc(file=sys.stderr)
            print(f"auditor: internal error: {exc.__class__.__name__}: {exc}; please report it with the traceback above",
                  file=sys.stderr)
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=_Auditor, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-v", "--verbose", is_flag=True, help="log details to stderr")
@click.version_option(_version(), "--version", prog_name="auditor", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Fairness and robustness audits of PyTorch image classifiers.

    Common options also read AUDITOR_DEVICE, AUDITOR_BUDGET, AUDITOR_POLICY, AUDITOR_OUT, AUDITOR_FORMAT,
    AUDITOR_THREADS and AUDITOR_QUIET; a flag beats the variable.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="auditor: %(levelname)s: %(message)s",
                        stream=sys.stderr)
    if ctx.invoked_subcommand is None:  # a bare `auditor`: help, not an error
        click.echo(ctx.get_help())
        ctx.exit(0)


@cli.command(short_help="audit a model on a probe and gate it against a policy")
@click.argument("model")
@AUDIT_OPTIONS
@MODEL_OPTIONS
@click.option("--sensitive", type=CSV, help="comma-separated sensitive attributes (default gender,age,race where present)")
@click.option("--age-buckets", default="0-19,20-39,40-59,60+", show_default=True, help="age groups")
@click.option("--baseline", type=click.Path(dir_okay=False), metavar="OLD/results.json",
              help="results.json of an earlier audit; the policy's regression clauses compare against it")
@click.option("--max-minutes", type=Minutes(), help="fit the audit in about N minutes: lower check budgets (thorough -> "
              "standard -> quick) as the cost plan needs, or exit 2 with the plan when even quick does not fit")
@output_options("audit-report", "json,html")
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader worker processes for reading images")
@click.option("--strict", is_flag=True, help="an unreadable probe image is an error (exit 2), not skipped")
@click.option("--allow-inconclusive", is_flag=True, help="exit 0 when the verdict is inconclusive")
@click.option("--context", "context", metavar="FILE", help="YAML with the model's intended_use, owner and sign_off: "
              "[{role, name}] lines, shown on the report's first page and kept in results.json")
@RUN_OPTIONS
@click.pass_context
def audit(ctx: click.Context, model: str, **o: Any) -> None:
    """Audit MODEL on a probe and gate it against a policy.

    MODEL: a TorchScript file, a .pt2 export, a state_dict (.safetensors/.pt) with --arch, torchvision:NAME, or a
    model spec YAML. Exit 0 pass, 1 fail (or inconclusive), 2 bad input, 3 internal error.
    """
    from auditor.api import audit as run_audit
    from auditor.cost import format_plan

    reporter = make_reporter(quiet=o["quiet"])  # bars on a terminal, timed lines elsewhere, none with --quiet

    def on_plan(plan: Any) -> None:
        if reporter is not None:  # --quiet: the plan is information too
            reporter.units.update({n: "passes" for n, c in plan.checks.items() if c.forward + c.backward})
            print(format_plan(plan), file=sys.stderr, flush=True)

    try:
        result = run_audit(
            model, o["probe"], arch=o["arch"], weights=o["weights"], num_classes=o["num_classes"],
            trust_pickle=o["trust_pickle"], target=o["target"], sensitive=o["sensitive"], age_buckets=o["age_buckets"],
            policy=o["policy"], baseline=o["baseline"], checks=o["checks"], params=check_params(o["params"]),
            budget=o["budget"], device=o["device"], seed=o["seed"], out=o["out"], formats=o["formats"], force=o["force"],
            strict=o["strict"], allow_inconclusive=o["allow_inconclusive"], max_minutes=o["max_minutes"],
            batch_size=o["batch_size"], num_workers=o["workers"], threads=o["threads"], command=command_line(ctx),
            context=o["context"],
            progress=reporter, on_plan=on_plan, **declared(o),
        )
    finally:
        if reporter is not None:
            reporter.close()
    print(result.summary() + _written(result.paths))
    ctx.exit(result.exit_code)


def _written(paths: dict[str, Any]) -> str:
    """The tail of `audit`'s last line: results.json and every report written (html, pdf, md, junit, in that
    order), e.g. "; results in OUT/results.json, reports OUT/report.html, OUT/report.pdf"."""
    from auditor.report import REPORT_FILES

    reports = [str(paths[k]) for k in REPORT_FILES if paths.get(k)]
    text = f"; results in {paths['json']}" if paths.get("json") else ""
    if reports:
        text += (", " if text else "; ") + ("report " if len(reports) == 1 else "reports ") + ", ".join(reports)
    return text


@cli.command(short_help="train a mitigated copy of a model and compare audits before and after")
@click.argument("method", type=click.Choice(MITIGATIONS))
@click.argument("model", required=False)
@click.option("--model", "model_option", hidden=True)  # deprecated: the model is an argument now; kept for old scripts
@click.option("--train", default="synth:faces:n=2000,seed=1", show_default=True, type=click.Path(),
              help="training data: any probe format, or synth:faces[:n=N,seed=S]")
@click.option("--val-share", type=float, default=0.2, show_default=True,
              help="share of the training data held out for early stopping")
@AUDIT_OPTIONS
@MODEL_OPTIONS
@click.option("--bias", default="race", show_default=True,
              help="adversarial-debiasing: the attribute the adversary must not recover")
@click.option("--strength", type=float, default=1.0, show_default=True, help="adversarial-debiasing: weight of the adversarial term")
@click.option("--debias-mode", type=click.Choice(["reversal", "confusion"]), default="reversal", show_default=True,
              help="adversarial-debiasing: gradient reversal or a confusion loss towards the uniform guess")
@click.option("--schedule", type=click.Choice(["constant", "linear", "dann"]), default="dann", show_default=True,
              help="adversarial-debiasing: strength ramp")
@click.option("--layer", help="adversarial-debiasing: the feature layer (default: the input of the first Linear after "
                              "the last convolution)")
@click.option("--eps", type=float, default=8 / 255, show_default="8/255", help="adversarial-training: PGD eps in [0, 1] pixel units")
@click.option("--steps", type=int, default=7, show_default=True, help="adversarial-training: PGD steps")
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True, help="adversarial-training: PGD norm")
@click.option("--trades-beta", type=float, help="adversarial-training: TRADES instead of PGD-AT, with this beta")
@click.option("--temperature", type=float, default=20.0, show_default=True, help="distillation: teacher and student temperature")
@click.option("--alpha", type=float, default=0.0, show_default=True, help="distillation: weight of the hard-label loss")
@click.option("--epochs", type=int, default=5, show_default=True, help="training epochs")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="learning rate")
@click.option("--patience", type=int, default=3, show_default=True,
              help="early stopping: epochs without validation gain (with --keep best)")
@click.option("--keep", type=click.Choice(["best", "last"]),
              help="the weights kept: the best validation epoch's, or the last epoch's (default: last for "
                   "adversarial-debiasing, whose validation split carries the bias; best otherwise)")
@output_options("mitigated", "json,html,md")
@click.option("--resume", is_flag=True, help="continue an interrupted training from --out/checkpoints")
@RUN_OPTIONS
@click.pass_context
def mitigate(ctx: click.Context, method: str, model: str | None, model_option: str | None, **o: Any) -> None:
    """Train a METHOD-mitigated copy of MODEL, audit both on the probe and compare them.

    MODEL: a state_dict with --arch, torchvision:NAME, or a model spec YAML naming its arch.
    """
    from auditor.mitigate.run import MitigateConfig, run_mitigation

    if model is not None and model_option is not None:
        raise click.UsageError("give the model once: as the MODEL argument (--model is its old spelling)", ctx)
    if model is None and model_option is None:
        raise click.UsageError("Missing argument 'MODEL'.", ctx)
    if model_option is not None:
        log.info("mitigate --model is deprecated: give the model as an argument, `auditor mitigate %s MODEL`", method)
    keys = ("train", "val_share", "arch", "weights", "num_classes", "trust_pickle", "target", "bias", "strength",
            "debias_mode", "schedule", "layer", "eps", "steps", "norm", "trades_beta", "temperature", "alpha", "epochs",
            "batch_size", "lr", "patience", "keep", "seed", "device", "probe", "policy", "checks", "budget", "force",
            "resume", "threads")
    cfg = MitigateConfig(method=method, model=model or model_option, **{k: o[k] for k in keys},
                         check_params=check_params(o["params"]), formats=o["formats"], out_dir=o["out"],
                         command=command_line(ctx), **declared(o))
    reporter = make_reporter(quiet=o["quiet"])  # bars on a terminal, timed lines elsewhere, none with --quiet
    try:
        outcome = run_mitigation(cfg, progress=reporter)
    finally:
        if reporter is not None:
            reporter.close()
    head = outcome.comparison.get("accuracy") or {}
    where = outcome.paths.get("html") or outcome.paths.get("json")
    print(f"MITIGATED ({method}): model {outcome.spec}; comparison {where}" + (f"; {head['text']}" if head.get("text") else ""))
    ctx.exit(outcome.exit_code)


@cli.command(short_help="re-render a report from results.json without re-running")
@click.argument("results", type=click.Path())
@click.option("--format", "formats", type=CSV, default="html", show_default=True,
              help="comma-separated: html,pdf,md,junit; written as report.html, report.pdf, report.md, report.junit.xml")
@click.option("--out", type=click.Path(), help="output folder (default: beside results.json); its manifest.json records "
                                                "what each report was rendered from")
@click.option("--allow-inconclusive", is_flag=True, default=None,
              help="JUnit: an undecided blocker clause is skipped, not failed (default: as the audit ran)")
def report(results: str, formats: list[str], out: str | None, allow_inconclusive: bool | None) -> None:
    """Re-render the reports of RESULTS (an audit folder, or the path to its results.json) without re-running."""
    from auditor import report as reports
    from auditor.outdir import folder_lock, record_manifest, results_in, sha256_file
    from auditor.results import read_results

    bad = [f for f in formats if f not in reports.REPORT_FILES]
    if bad or not formats:
        raise UsageError(f"--format {(bad or [''])[0]!r} cannot be re-rendered; choose from {', '.join(reports.REPORT_FILES)}")
    source = results_in(results)
    folder = Path(out) if out else source.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file; pass a folder (it is created if missing)")
    if "pdf" in formats:
        reports.check_pdf_available()  # before writing anything
    written = []
    with folder_lock(folder, what="audit or report"):  # each report atomically, then the manifest
        results_sha = sha256_file(source) if source.is_file() else ""
        data = read_results(source)
        html = reports.render_html(data) if {"html", "pdf"} & set(formats) else None
        for fmt in dict.fromkeys(formats):
            if fmt == "html":
                path = reports.write_html(data, folder, html=html)
            elif fmt == "pdf":
                path = reports.write_pdf(data, folder, html=html)
            else:
                path = reports.write_report(data, folder, fmt, allow_inconclusive=allow_inconclusive)
            written.append(path)
        record_manifest(folder, written, results_sha)
    for path in written:
        print(path)


@cli.group(short_help="probe utilities: write a synthetic probe, or count a probe's groups")
def probe() -> None:
    """Probe utilities: write a synthetic probe, or count a probe's groups."""


@probe.command(short_help="write a synthetic probe or training set as a manifest folder")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="the folder to write")
@click.option("--n", type=int, default=1200, show_default=True, help="images")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the draw")
@click.option("--size", type=int, default=64, show_default=True, help="image side in pixels")
@click.option("--shortcut", type=float, default=0.0, show_default=True,
              help="training sets: how strongly the watermark cue follows the label (0..1)")
@click.option("--watermark", type=float, default=0.4, show_default=True,
              help="rate of the planted cue where it does not follow the label (0..1)")
@click.option("--cue", type=click.Choice(["watermark", "sticker"]), default="watermark", show_default=True,
              help="the planted cue: watermark (7x7 stamp, top-left) or sticker (9x9 orange disc, bottom-right)")
@click.option("--like", type=click.Choice(["shortcut_cnn", "sticker_cnn"]),
              help="a fresh draw of the biased training set that sample model was trained on (its group weights, "
                   "shortcut and label noise; --shortcut and --cue are then the recipe's)")
@click.option("--force", is_flag=True, help="replace an existing non-empty --out folder")
def synth(out: str, n: int, seed: int, size: int, shortcut: float, watermark: float, cue: str, like: str | None,
          force: bool) -> None:
    """Write a synthetic probe or training set as a manifest folder (images and manifest.csv)."""
    from probes.synth import generate_training_set, write_manifest_folder

    if n < 1:
        raise UsageError(f"--n must be at least 1; got {n}")
    if not 0.0 <= shortcut <= 1.0:
        raise UsageError(f"--shortcut must be in [0, 1]; got {shortcut}")
    if like:
        from sample_models.recipe import RECIPES

        recipe = {**RECIPES[like].train_set, "n": n, "seed": seed, "size": size, "watermark": watermark}
        drawn = generate_training_set(**recipe)
    else:
        drawn = generate_training_set(n, seed=seed, shortcut=shortcut, size=size, watermark=watermark, cue=cue)
    folder = write_manifest_folder(drawn, Path(out), force=force)
    print(f"wrote {len(drawn)} images and manifest.csv to {folder}")


@probe.command(short_help="print counts per attribute and group")
@click.argument("probe_path", metavar="PROBE", type=click.Path())
@click.option("--target", help="probe column to use as the label (e.g. gender)")
@click.option("--sensitive", type=CSV, help="comma-separated sensitive attributes (default gender,age,race where present)")
@click.option("--age-buckets", default="0-19,20-39,40-59,60+", show_default=True, help="age groups")
def check(probe_path: str, target: str | None, sensitive: list[str] | None, age_buckets: str) -> None:
    """Print the counts per attribute and group of PROBE (a folder, CSV or synth:faces[:...])."""
    from probes import format_summary, open_probe, summarize

    opened = open_probe(probe_path, target=target, sensitive=sensitive, age_buckets=age_buckets)
    print(format_summary(summarize(opened)))


@cli.command(short_help="list the registered checks and their parameters")
def checks() -> None:
    """List the registered checks and their parameters (name = default, constraint, help)."""
    from auditor.checks import list_checks

    for cls in list_checks():
        print(f"{cls.name}: {cls.description}")
        for pname, spec in cls.params.items():
            print(f"    {pname} = {spec.default!r}  ({spec.constraint()}) {spec.describe()}")


def _usage_line(exc: click.ClickException) -> str:
    """Click's error as our one line: ``auditor: error: MESSAGE (see 'auditor audit --help')``."""
    text = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None and isinstance(exc, click.UsageError) else ""
    return f"auditor: error: {text}{hint}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `auditor` console script; returns the process exit code.

    Exit codes: 0 pass, 1 fail, 2 bad input or usage, 3 internal error, 130 interrupted. Shell completion:
    click's ``_AUDITOR_COMPLETE`` (e.g. ``eval "$(_AUDITOR_COMPLETE=bash_source auditor)"``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="auditor", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group (`auditor probe`): its help, and 2 as before
        click.echo(exc.ctx.get_help(), err=True)
        return EXIT_BAD_INPUT
    except click.ClickException as exc:  # a usage error: one line, exit 2
        print(_usage_line(exc), file=sys.stderr)
        return exc.exit_code
    except click.exceptions.Abort:  # Ctrl-C outside a command (click turned it into Abort)
        print("auditor: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return int(code or 0)
