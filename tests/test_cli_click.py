"""The click command line itself: help, version, environment variables, usage errors, the model argument of
`mitigate`, fast start without torch, and README examples that the parser accepts."""
from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from auditor import __version__
from auditor.cli import cli, main
from auditor.cli._options import MITIGATIONS
from tests.cli_fixtures import command_words, is_synopsis, option_names, parse_command_line, readme_commands
from tests.conftest import ROOT

README_COMMANDS = readme_commands(ROOT / "README.md")


def test_a_bare_auditor_prints_help_and_exits_0(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: auditor") and "audit" in out and "mitigate" in out


def test_a_bare_auditor_prints_help_under_the_cli_runner_too():
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0 and "Commands:" in result.output


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"auditor {__version__}"


def test_help_shows_defaults_and_environment_variables():
    result = CliRunner().invoke(cli, ["audit", "--help"])
    assert result.exit_code == 0
    assert "default: standard" in result.output and "AUDITOR_DEVICE" in result.output


def test_a_usage_error_exits_2_with_one_line_naming_the_option(capsys):
    assert main(["audit", "model.pt", "--budget", "huge"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("auditor: error: ") and "--budget" in err[0] and "huge" in err[0]


def test_an_unknown_command_exits_2_with_one_line(capsys):
    assert main(["audti"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "audti" in err[0]


def test_a_missing_model_exits_2(capsys):
    assert main(["mitigate", "distillation"]) == 2
    assert "MODEL" in capsys.readouterr().err


def test_environment_variables_set_the_common_options(monkeypatch):
    monkeypatch.setenv("AUDITOR_DEVICE", "cuda:1")
    monkeypatch.setenv("AUDITOR_BUDGET", "quick")
    monkeypatch.setenv("AUDITOR_FORMAT", "json,md")
    for args in (["audit", "m.pt"], ["mitigate", "distillation", "m.pt"]):
        params = parse_command_line(args).params
        assert (params["device"], params["budget"], params["formats"]) == ("cuda:1", "quick", ["json", "md"])


def test_a_flag_beats_its_environment_variable(monkeypatch):
    monkeypatch.setenv("AUDITOR_BUDGET", "quick")
    assert parse_command_line(["audit", "m.pt", "--budget", "thorough"]).params["budget"] == "thorough"


def test_a_bad_environment_value_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setenv("AUDITOR_BUDGET", "huge")
    assert main(["audit", "model.pt"]) == 2
    assert "AUDITOR_BUDGET" in capsys.readouterr().err


def test_mitigate_takes_the_model_as_an_argument_or_by_its_old_option():
    assert parse_command_line(["mitigate", "distillation", "m.yaml"]).params["model"] == "m.yaml"
    assert parse_command_line(["mitigate", "distillation", "--model", "m.yaml"]).params["model_option"] == "m.yaml"


def test_mitigate_refuses_the_model_given_twice(capsys):
    assert main(["mitigate", "distillation", "a.yaml", "--model", "b.yaml"]) == 2
    assert "once" in capsys.readouterr().err


def test_the_mitigation_choices_are_the_trainers_methods():
    from auditor.mitigate.run import METHODS

    assert MITIGATIONS == METHODS


def test_an_auditor_error_keeps_its_exit_code_and_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_an_internal_error_is_a_traceback_one_line_and_exit_3(monkeypatch, capsys):
    import auditor.checks

    monkeypatch.setattr(auditor.checks, "list_checks", lambda: 1 / 0)
    assert main(["checks"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("auditor: internal error: ZeroDivisionError")


def test_ctrl_c_is_exit_130_with_one_line(monkeypatch, capsys):
    import auditor.checks

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(auditor.checks, "list_checks", interrupted)
    assert main(["checks"]) == 130
    assert capsys.readouterr().err == "auditor: interrupted\n"


def test_listing_checks_and_counting_a_probe_load_no_torch():
    code = ("import sys; from auditor.cli import main; main(['checks']); main(['probe', 'check', 'synth:faces:n=20']); "
            "print(sorted(m for m in ('torch', 'captum', 'art', 'scipy.stats') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_the_readme_has_examples_to_check():
    assert sum(not is_synopsis(c) for c in README_COMMANDS) >= 5 and sum(map(is_synopsis, README_COMMANDS)) >= 3


@pytest.mark.parametrize("command", [c for c in README_COMMANDS if not is_synopsis(c)])
def test_every_readme_example_parses(command):
    words = command_words(command)
    ctx = parse_command_line(words)  # a bad option or value raises click.UsageError
    assert ctx.command.name in words and ctx.args == []  # the command it names, nothing left unparsed


@pytest.mark.parametrize("command", [c for c in README_COMMANDS if is_synopsis(c)])
def test_every_option_in_the_readme_synopsis_exists(command):
    words = command_words(command)
    known = option_names(words)
    named = {w.strip("[]").split("=")[0] for w in words if w.strip("[").startswith("-")}
    assert named <= known, sorted(named - known)


def test_the_parse_helper_rejects_what_the_cli_rejects():
    with pytest.raises(click.UsageError):
        parse_command_line(["audit", "m.pt", "--no-such-option"])
