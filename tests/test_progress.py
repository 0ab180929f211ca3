"""Progress on stderr: plain timed lines off a terminal, bars on one, nothing with --quiet; --threads; and
the long checks reporting progress within themselves, not only at their ends."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import torch

from auditor.checks import get_check
from auditor.cli import main
from auditor.progress import DEFAULT_UNITS, PlainLines, TerminalBars, format_duration, make_reporter
from tests.conftest import ROOT, SAMPLE_MODELS, check_context


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _plain(interval: float = 30.0, **units: str) -> tuple[PlainLines, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    return PlainLines(out, interval=interval, clock=clock, units={**DEFAULT_UNITS, **units}), out, clock


# --- the plain renderer ---------------------------------------------------------------------------


def test_plain_lines_say_when_each_stage_starts_and_ends_with_its_duration():
    lines, out, clock = _plain()
    lines("predict", 0, 120)
    clock.now += 2
    lines("predict", 64, 120)
    clock.now += 2
    lines("predict", 120, 120)
    lines("group_metrics", 0, 7)
    clock.now += 75
    lines("group_metrics", 7, 7)
    assert out.getvalue().splitlines() == [
        "auditor: predict started (120 images)",
        "auditor: predict done in 4s",
        "auditor: group_metrics started (7)",
        "auditor: group_metrics done in 1m15s",
    ]


def test_plain_lines_report_a_running_stage_at_most_once_per_interval_with_its_eta():
    lines, out, clock = _plain(spurious="passes")
    lines("spurious", 0, 1500)
    for done in range(100, 1500, 100):  # 100 passes every 10 s: 150 s in all
        clock.now += 10
        lines("spurious", done, 1500)
    periodic = [line for line in out.getvalue().splitlines() if "ETA" in line]
    # the start line comes with the first progress (10 s in); 30 s later 1100 passes are left at 10/s
    assert periodic[0] == "auditor: spurious 400/1500 passes (27%), ETA 1m50s"
    assert len(periodic) == 4  # at 40, 70, 100 and 130 s


def test_with_interval_0_every_report_of_a_running_stage_prints_a_line():
    lines, out, clock = _plain(interval=0)
    lines("train", 0, 10)
    for done in (1, 2, 3):
        clock.now += 1
        lines("train", done, 10)
    assert out.getvalue().splitlines()[1:] == ["auditor: train 1/10 batches (10%), ETA 9s",
                                               "auditor: train 2/10 batches (20%), ETA 8s",
                                               "auditor: train 3/10 batches (30%), ETA 7s"]


def test_a_part_of_a_check_gets_no_lines_of_its_own_but_shows_in_the_checks_line():
    lines, out, clock = _plain(interval=0, spurious="passes")
    lines("spurious", 0, 1500)
    lines("spurious: masks", 96, 2560)
    clock.now += 10
    lines("spurious", 412, 1500)
    lines("spurious: masks", 2560, 2560)
    lines("spurious", 1500, 1500)
    assert out.getvalue().splitlines() == ["auditor: spurious started (1500 passes)",
                                           "auditor: spurious 412/1500 passes (27%), ETA 26s; masks 96/2560",
                                           "auditor: spurious done in 10s"]


def test_a_stage_that_fails_at_once_prints_no_line_so_the_error_stands_alone():
    lines, out, _ = _plain(interval=0)
    lines("predict", 0, 12)  # and the first batch raises
    assert out.getvalue() == ""


def test_a_stage_reported_again_after_its_end_starts_anew():  # the audits before and after a mitigation
    lines, out, _ = _plain()
    for _ in range(2):
        lines("predict", 0, 10)
        lines("predict", 10, 10)
    assert [line.split(" ", 2)[2] for line in out.getvalue().splitlines()] == ["started (10 images)", "done in 0s"] * 2


@pytest.mark.parametrize("seconds, text", [(0.4, "0s"), (42, "42s"), (190, "3m10s"), (3720, "1h02m")])
def test_durations_read_like_a_clock(seconds, text):
    assert format_duration(seconds) == text


# --- choosing the renderer, and the bars -------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_renderer_is_bars_on_a_terminal_lines_elsewhere_and_none_when_quiet():
    assert isinstance(make_reporter(stream=Tty()), TerminalBars)
    assert isinstance(make_reporter(stream=io.StringIO()), PlainLines)
    assert make_reporter(quiet=True, stream=Tty()) is None


def test_a_bar_follows_its_stage_and_goes_with_it_parts_included():
    bars = TerminalBars(Tty())
    bars("attacks", 0, 100)
    bars("attacks: pgd linf", 8, 40)
    bars("attacks", 30, 100)
    assert bars.bars["attacks"].n == 30 and bars.bars["attacks: pgd linf"].n == 8
    bars("attacks", 100, 100)
    assert bars.bars == {}


# --- the CLI: --quiet and --threads -------------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet_audit(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], dict]:
    """One tiny audit run as CI runs it (stderr a pipe) with --quiet and --threads 1."""
    out = tmp_path_factory.mktemp("quiet") / "audit"
    proc = subprocess.run([sys.executable, "-m", "auditor", "audit", str(SAMPLE_MODELS["clean_cnn"]), "--probe",
                           "synth:faces:n=120", "--checks", "group_metrics", "--budget", "quick", "--device", "cpu",
                           "--format", "json", "--out", str(out), "--quiet", "--threads", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc, json.loads((out / "results.json").read_text()) if proc.returncode in (0, 1) else {}


def test_quiet_prints_nothing_on_stderr_and_still_the_summary_line(quiet_audit):
    proc, _ = quiet_audit
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("PASS: policy default") and len(proc.stdout.splitlines()) == 1


def test_the_thread_count_used_is_recorded_in_results(quiet_audit):
    assert quiet_audit[1]["environment"]["threads"] == 1


@pytest.mark.parametrize("command", [["audit", str(SAMPLE_MODELS["clean_cnn"])],
                                     ["mitigate", "distillation", "--model", str(SAMPLE_MODELS["clean_cnn"])]])
def test_threads_below_1_exit_2_with_one_line_naming_the_option(tmp_path, capsys, command):
    assert main([*command, "--out", str(tmp_path / "out"), "--threads", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "threads" in err[0]  # the option, as --threads or the parameter 'threads'


# --- the long checks report progress within themselves --------------------------------------------------

PARTS = [  # check, tiny parameters, the part whose progress must move
    ("spurious", {"n_images": 8, "steps": 4, "figures": False}, "spurious: masks"),
    ("attacks", {"n_images": 8, "steps": 2, "blackbox": False}, "attacks: pgd linf"),
]


@pytest.fixture(scope="module")
def reported(one_thread_module, sample_models_clean) -> dict[str, list[tuple[str, int, int]]]:
    """Every progress report of each check in `PARTS` on a tiny context."""
    out: dict[str, list[tuple[str, int, int]]] = {}
    for check, params, _ in PARTS:
        seen: list[tuple[str, int, int]] = []
        ctx = check_context(sample_models_clean, 120, progress=lambda *a, seen=seen: seen.append(a))
        get_check(check)(**params).run(ctx)
        out[check] = seen
    return out


@pytest.fixture(scope="module")
def sample_models_clean() -> torch.nn.Module:
    from auditor.models import load_model

    return load_model(str(SAMPLE_MODELS["clean_cnn"])).module


@pytest.mark.parametrize("check, part", [(c, p) for c, _, p in PARTS])
def test_a_long_check_reports_intermediate_progress_not_only_its_ends(reported, check, part):
    values = {done for stage, done, total in reported[check] if stage == part and 0 < done < total}
    assert len(values) >= 2, reported[check]


@pytest.mark.parametrize("check", [c for c, _, _ in PARTS])
def test_every_part_a_check_starts_is_reported_done(reported, check):
    last = {stage: (done, total) for stage, done, total in reported[check]}
    assert last and all(done == total for done, total in last.values()), last
