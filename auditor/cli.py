"""Command line: parse, call the API, map errors to exit codes. Progress on stderr, summary on stdout."""
from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

from auditor.errors import EXIT_INTERNAL, AuditorError, UsageError

__all__ = ["main", "build_parser"]

log = logging.getLogger("auditor")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _check_param(text: str) -> tuple[str, str, Any]:
    """``CHECK.PARAM=VALUE`` with VALUE parsed as YAML (numbers, booleans, strings)."""
    import yaml

    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"{text!r} is not CHECK.PARAM=VALUE (e.g. group_metrics.min_group_size=50)")
    key, value = text.split("=", 1)
    check, param = key.split(".", 1)
    return check, param, yaml.safe_load(value)


def _minutes(text: str) -> float:
    """``--max-minutes``: a number of minutes > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of minutes > 0, e.g. 10; got {text!r}")
    return value


def _print_plan(plan: Any) -> None:
    from auditor.cost import format_plan

    print(format_plan(plan), file=sys.stderr, flush=True)


def _run_options(p: argparse.ArgumentParser) -> None:
    """How a long run reports and uses the machine (audit and mitigate alike)."""
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress and no cost plan on stderr (errors and the summary line still print)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's, usually the cores)")


def _reporter(ns: argparse.Namespace) -> Any:
    """The progress renderer for stderr (`auditor.progress`): bars on a terminal, timed lines elsewhere, none with --quiet."""
    from auditor.progress import make_reporter

    return make_reporter(quiet=ns.quiet)


def _check_params(given: list[tuple[str, str, Any]]) -> dict[str, dict[str, Any]]:
    """``--param CHECK.PARAM=VALUE`` options grouped by check."""
    params: dict[str, dict[str, Any]] = {}
    for check, param, value in given:
        params.setdefault(check, {})[param] = value
    return params


def _model_options(p: argparse.ArgumentParser) -> None:
    """What a model spec would say, as flags (audit and mitigate alike); a flag beats the spec."""
    g = p.add_argument_group("what the model's file does not say (a flag beats the model spec; what neither says is "
                             "assumed and verified before any check)")
    g.add_argument("--classes", help="class names in output order, e.g. male,female")
    g.add_argument("--positive-class", dest="positive_class", help="the positive class (a name or an output index)")
    g.add_argument("--mean", help="normalisation mean R,G,B applied to [0,1] pixels, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", help="normalisation std R,G,B, e.g. 0.229,0.224,0.225")
    g.add_argument("--input-size", dest="input_size", help="input side in pixels (224) or H,W")


def _declared(ns: argparse.Namespace) -> dict[str, Any]:
    """The model flags as typed `AuditConfig`/`MitigateConfig` fields (bad values exit 2 with the fix)."""
    from auditor.models import parse_declared

    d = parse_declared(classes=ns.classes, positive_class=ns.positive_class, mean=ns.mean, std=ns.std,
                       input_size=ns.input_size)
    return {"classes": d.classes, "positive_class": d.positive_class, "mean": d.mean, "std": d.std,
            "input_size": d.input_size}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="auditor", description="Fairness and robustness audits of PyTorch image classifiers.")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    a = sub.add_parser("audit", help="audit a model on a probe and gate it against a policy")
    a.add_argument("model", help="TorchScript file, .pt2 export, state_dict (.safetensors/.pt) with --arch, torchvision:NAME, or a model spec YAML")
    a.add_argument("--probe", default="synth:faces", help="probe folder/CSV, or synth:faces[:n=N,seed=S,size=PX] (default synth:faces)")
    a.add_argument("--arch", help="architecture for a state_dict: torchvision:NAME or package.module:factory")
    a.add_argument("--weights", help="state_dict file for torchvision:NAME")
    a.add_argument("--num-classes", type=int, help="number of model outputs, when the weights do not tell")
    a.add_argument("--trust-pickle", action="store_true", help="allow loading a full pickle (runs code from the file)")
    _model_options(a)
    a.add_argument("--target", help="probe column to use as the label (e.g. gender)")
    a.add_argument("--sensitive", type=_csv, help="comma-separated sensitive attributes (default gender,age,race where present)")
    a.add_argument("--age-buckets", default="0-19,20-39,40-59,60+", help="age groups, e.g. 0-19,20-39,40-59,60+")
    a.add_argument("--policy", help="policy YAML file or shipped policy name (default, strict-ci, eu-ai-act-high-risk; default: default)")
    a.add_argument("--baseline", metavar="OLD/results.json",
                   help="results.json of an earlier audit; the policy's regression clauses compare against it")
    a.add_argument("--checks", type=_csv, help="comma-separated checks to run (default: all; see `auditor checks`). "
                   "A partial run gets a verdict on what ran: clauses of the other checks are not_run and do not "
                   "count (the summary line names them); leaving out a check the policy requires (default: group_metrics) "
                   "makes the verdict inconclusive")
    a.add_argument("--param", dest="params", action="append", type=_check_param, default=[], metavar="CHECK.PARAM=VALUE",
                   help="set a check parameter, e.g. group_metrics.min_group_size=50 (repeatable)")
    a.add_argument("--budget", default="standard", choices=["quick", "standard", "thorough"])
    a.add_argument("--max-minutes", dest="max_minutes", type=_minutes, metavar="N",
                   help="fit the audit in about N minutes: lower check budgets (thorough -> standard -> quick) as the "
                        "cost plan needs, or exit 2 with the plan when even quick does not fit")
    a.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", default="audit-report",
                   help="output folder (default audit-report): written whole, swapped in when the audit ends; "
                        "an earlier audit there is refused without --force")
    a.add_argument("--force", action="store_true",
                   help="replace the earlier audit in --out (whole: its files the new run does not write go too)")
    a.add_argument("--format", type=_csv, default=["json", "html"], help="comma-separated: json,html,pdf,md,junit (default json,html; results.json is always written; "
                        "pdf needs weasyprint and Pango)")
    a.add_argument("--batch-size", type=int, default=64)
    a.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for reading images")
    a.add_argument("--strict", action="store_true", help="an unreadable probe image is an error (exit 2), not skipped")
    a.add_argument("--allow-inconclusive", action="store_true", help="exit 0 when the verdict is inconclusive")
    _run_options(a)

    m = sub.add_parser("mitigate", help="train a mitigated copy of a model and compare audits before and after")
    m.add_argument("method", choices=["adversarial-debiasing", "adversarial-training", "distillation"])
    m.add_argument("--model", required=True, help="a state_dict with --arch, torchvision:NAME, or a model spec YAML naming its arch")
    m.add_argument("--train", default="synth:faces:n=2000,seed=1",
                   help="training data: any probe format, or synth:faces[:n=N,seed=S] (default synth:faces:n=2000,seed=1)")
    m.add_argument("--val-share", type=float, default=0.2, help="share of the training data held out for early stopping")
    m.add_argument("--arch", help="architecture for a state_dict: torchvision:NAME or package.module:factory")
    m.add_argument("--weights", help="state_dict file for torchvision:NAME")
    m.add_argument("--num-classes", type=int, help="number of model outputs, when the weights do not tell")
    m.add_argument("--trust-pickle", action="store_true", help="allow loading a full pickle (runs code from the file)")
    _model_options(m)
    m.add_argument("--target", help="probe column to use as the label (e.g. gender)")
    m.add_argument("--bias", default="race", help="adversarial-debiasing: the attribute the adversary must not recover (default race)")
    m.add_argument("--strength", type=float, default=1.0, help="adversarial-debiasing: weight of the adversarial term")
    m.add_argument("--debias-mode", dest="debias_mode", default="reversal", choices=["reversal", "confusion"],
                   help="adversarial-debiasing: gradient reversal (default) or a confusion loss towards the uniform guess")
    m.add_argument("--schedule", default="dann", choices=["constant", "linear", "dann"], help="adversarial-debiasing: strength ramp")
    m.add_argument("--layer", help="adversarial-debiasing: the feature layer (default: the input of the first Linear after the last convolution)")
    m.add_argument("--eps", type=float, default=8 / 255, help="adversarial-training: PGD eps in [0, 1] pixel units")
    m.add_argument("--steps", type=int, default=7, help="adversarial-training: PGD steps")
    m.add_argument("--norm", default="linf", choices=["linf", "l2"], help="adversarial-training: PGD norm")
    m.add_argument("--trades-beta", type=float, help="adversarial-training: TRADES instead of PGD-AT, with this beta")
    m.add_argument("--temperature", type=float, default=20.0, help="distillation: teacher and student temperature")
    m.add_argument("--alpha", type=float, default=0.0, help="distillation: weight of the hard-label loss")
    m.add_argument("--epochs", type=int, default=5)
    m.add_argument("--batch-size", type=int, default=64)
    m.add_argument("--lr", type=float, default=1e-3)
    m.add_argument("--patience", type=int, default=3, help="early stopping: epochs without validation gain (with --keep best)")
    m.add_argument("--keep", choices=["best", "last"],
                   help="the weights kept: the best validation epoch's, or the last epoch's (default: last for "
                        "adversarial-debiasing, whose validation split carries the bias; best otherwise)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    m.add_argument("--probe", default="synth:faces", help="the probe both audits run on (default synth:faces)")
    m.add_argument("--policy", help="policy for both audits (default: default)")
    m.add_argument("--checks", type=_csv, help="checks for both audits (default: all)")
    m.add_argument("--param", dest="params", action="append", type=_check_param, default=[], metavar="CHECK.PARAM=VALUE")
    m.add_argument("--budget", default="standard", choices=["quick", "standard", "thorough"])
    m.add_argument("--format", type=_csv, default=["json", "html", "md"], help="report formats of the audits and the comparison")
    m.add_argument("--out", default="mitigated", help="output folder (default mitigated)")
    m.add_argument("--force", action="store_true", help="overwrite an earlier mitigation in --out")
    m.add_argument("--resume", action="store_true", help="continue an interrupted training from --out/checkpoints")
    _run_options(m)

    r = sub.add_parser("report", help="re-render a report from results.json without re-running")
    r.add_argument("results", help="an audit folder, or the path to its results.json")
    r.add_argument("--format", type=_csv, default=["html"],
                   help="comma-separated: html,pdf,md,junit (default html); written as report.html, report.pdf, "
                        "report.md, report.junit.xml")
    r.add_argument("--out", help="output folder (default: beside results.json); its manifest.json records what "
                                 "each report was rendered from")
    r.add_argument("--allow-inconclusive", action="store_true", default=None,
                   help="JUnit: an undecided blocker clause is skipped, not failed (default: as the audit ran)")

    pr = sub.add_parser("probe", help="probe utilities")
    psub = pr.add_subparsers(dest="probe_command", required=True)
    ps = psub.add_parser("synth", help="write a synthetic probe or training set as a manifest folder")
    ps.add_argument("--out", required=True)
    ps.add_argument("--n", type=int, default=1200)
    ps.add_argument("--seed", type=int, default=0)
    ps.add_argument("--size", type=int, default=64)
    ps.add_argument("--shortcut", type=float, default=0.0, help="training sets: how strongly the watermark cue follows the label (0..1)")
    ps.add_argument("--watermark", type=float, default=0.4, help="rate of the planted cue where it does not follow the label (0..1)")
    ps.add_argument("--cue", choices=["watermark", "sticker"], default="watermark",
                    help="the planted cue: watermark (7x7 stamp, top-left) or sticker (9x9 orange disc, bottom-right)")
    ps.add_argument("--like", choices=["shortcut_cnn", "sticker_cnn"],
                    help="a fresh draw of the biased training set that sample model was trained on (its group weights, "
                         "shortcut and label noise; --shortcut and --cue are then the recipe's)")
    ps.add_argument("--force", action="store_true", help="replace an existing non-empty --out folder")
    pc = psub.add_parser("check", help="print counts per attribute and group")
    pc.add_argument("probe")
    pc.add_argument("--target")
    pc.add_argument("--sensitive", type=_csv)
    pc.add_argument("--age-buckets", default="0-19,20-39,40-59,60+")

    sub.add_parser("checks", help="list the registered checks and their parameters")
    return p


def _cmd_audit(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from auditor.api import audit

    reporter = _reporter(ns)

    def on_plan(plan: Any) -> None:
        if reporter is not None:  # --quiet: the plan is information too
            reporter.units.update({n: "passes" for n, c in plan.checks.items() if c.forward + c.backward})
            _print_plan(plan)

    try:
        result = audit(
            ns.model, ns.probe, arch=ns.arch, weights=ns.weights, num_classes=ns.num_classes,
            trust_pickle=ns.trust_pickle, target=ns.target, sensitive=ns.sensitive, age_buckets=ns.age_buckets,
            policy=ns.policy, baseline=ns.baseline, checks=ns.checks, params=_check_params(ns.params), budget=ns.budget,
            device=ns.device, seed=ns.seed, out=ns.out, formats=ns.format, force=ns.force, strict=ns.strict,
            allow_inconclusive=ns.allow_inconclusive, max_minutes=ns.max_minutes, batch_size=ns.batch_size,
            num_workers=ns.workers, threads=ns.threads, command="auditor " + " ".join(argv), progress=reporter,
            on_plan=on_plan, **_declared(ns),
        )
    finally:
        if reporter is not None:
            reporter.close()
    json_path = result.paths.get("json")
    where = result.paths.get("html") or json_path
    print(result.summary() + f"; results in {json_path}" + (f", report {where}" if where != json_path else ""))
    return result.exit_code


def _cmd_mitigate(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from auditor.mitigate.run import MitigateConfig, run_mitigation

    params = _check_params(ns.params)
    keys = ("model", "train", "val_share", "arch", "weights", "num_classes", "trust_pickle", "target", "bias", "strength",
            "debias_mode", "schedule", "layer", "eps", "steps", "norm", "trades_beta", "temperature", "alpha", "epochs", "batch_size", "lr",
            "patience", "keep", "seed", "device", "probe", "policy", "checks", "budget", "force", "resume", "threads")
    cfg = MitigateConfig(method=ns.method, **{k: getattr(ns, k) for k in keys}, check_params=params, formats=ns.format,
                         out_dir=ns.out, command="auditor " + " ".join(argv), **_declared(ns))
    reporter = _reporter(ns)
    try:
        outcome = run_mitigation(cfg, progress=reporter)
    finally:
        if reporter is not None:
            reporter.close()
    head = outcome.comparison.get("accuracy") or {}
    where = outcome.paths.get("html") or outcome.paths.get("json")
    print(f"MITIGATED ({ns.method}): model {outcome.spec}; comparison {where}" + (f"; {head['text']}" if head.get("text") else ""))
    return outcome.exit_code


def _cmd_report(ns: argparse.Namespace) -> int:
    from auditor import report
    from auditor.outdir import folder_lock, record_manifest, results_in, sha256_file
    from auditor.results import read_results

    bad = [f for f in ns.format if f not in report.REPORT_FILES]
    if bad or not ns.format:
        raise UsageError(f"--format {(bad or [''])[0]!r} cannot be re-rendered; choose from {', '.join(report.REPORT_FILES)}")
    source = results_in(ns.results)
    out = Path(ns.out) if ns.out else source.parent
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a folder (it is created if missing)")
    if "pdf" in ns.format:
        from auditor.report import check_pdf_available

        check_pdf_available()  # before writing anything
    written = []
    with folder_lock(out, what="audit or report"):  # each report atomically, then the manifest
        results_sha = sha256_file(source) if source.is_file() else ""
        results = read_results(source)
        html = report.render_html(results) if {"html", "pdf"} & set(ns.format) else None
        for fmt in dict.fromkeys(ns.format):
            if fmt == "html":
                path = report.write_html(results, out, html=html)
            elif fmt == "pdf":
                from auditor.report import write_pdf

                path = write_pdf(results, out, html=html)
            else:
                path = report.write_report(results, out, fmt, allow_inconclusive=ns.allow_inconclusive)
            written.append(path)
        record_manifest(out, written, results_sha)
    for path in written:
        print(path)
    return 0


def _cmd_probe(ns: argparse.Namespace) -> int:
    if ns.probe_command == "check":
        from probes import format_summary, open_probe, summarize

        probe = open_probe(ns.probe, target=ns.target, sensitive=ns.sensitive, age_buckets=ns.age_buckets)
        print(format_summary(summarize(probe)))
        return 0
    from probes.synth import generate_training_set, write_manifest_folder

    if ns.n < 1:
        raise UsageError(f"--n must be at least 1; got {ns.n}")
    if not 0.0 <= ns.shortcut <= 1.0:
        raise UsageError(f"--shortcut must be in [0, 1]; got {ns.shortcut}")
    if ns.like:
        from sample_models.recipe import RECIPES

        recipe = {**RECIPES[ns.like].train_set, "n": ns.n, "seed": ns.seed, "size": ns.size, "watermark": ns.watermark}
        probe = generate_training_set(**recipe)
    else:
        probe = generate_training_set(ns.n, seed=ns.seed, shortcut=ns.shortcut, size=ns.size, watermark=ns.watermark, cue=ns.cue)
    out = write_manifest_folder(probe, Path(ns.out), force=ns.force)
    print(f"wrote {len(probe)} images and manifest.csv to {out}")
    return 0


def _cmd_checks() -> int:
    from auditor.checks import list_checks

    for cls in list_checks():
        print(f"{cls.name}: {cls.description}")
        for pname, spec in cls.params.items():
            print(f"    {pname} = {spec.default!r}  ({spec.constraint()}) {spec.help}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `auditor` console script; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(args)
    logging.basicConfig(level=logging.INFO if ns.verbose else logging.WARNING, format="auditor: %(levelname)s: %(message)s",
                        stream=sys.stderr)
    try:
        if ns.command == "audit":
            return _cmd_audit(ns, args)
        if ns.command == "report":
            return _cmd_report(ns)
        if ns.command == "mitigate":
            return _cmd_mitigate(ns, args)
        if ns.command == "probe":
            return _cmd_probe(ns)
        return _cmd_checks()
    except AuditorError as exc:
        print(f"auditor: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("auditor: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, with the traceback for the report
        traceback.print_exc(file=sys.stderr)
        print(f"auditor: internal error: {exc.__class__.__name__}: {exc}; please report it with the traceback above",
              file=sys.stderr)
        return EXIT_INTERNAL
