"""The README's CI gate jobs are valid YAML and run commands this repo has, with options the CLI takes."""
from __future__ import annotations

import re
import shlex

import pytest
import yaml

from auditor.api import FORMATS
from tests.cli_fixtures import parse_command_line
from tests.conftest import ROOT


def _ci_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## CI gate", 1)[1].split("\n## ", 1)[0]


def _jobs() -> list[dict]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", _ci_section(), re.DOTALL)]


def _commands() -> list[str]:
    lines: list[str] = []

    def walk(x: object) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str):
            lines.extend(x.replace("\\\n", " ").splitlines())

    for job in _jobs():
        walk(job)
    return [line.strip() for line in lines if ".venv/bin/auditor" in line or "scripts/" in line]


def test_there_is_a_github_and_a_gitlab_job() -> None:
    github, gitlab = _jobs()
    assert "actions/setup-python@v5" in str(github) and "3.11" in str(github)
    assert gitlab["audit"]["artifacts"]["reports"]["junit"] == "audit-report/report.junit.xml"


@pytest.mark.parametrize("command", _commands())
def test_every_command_exists_and_parses(command: str) -> None:
    words = shlex.split(command)
    if words[0] == "bash":
        assert (ROOT / words[1]).is_file()
        return
    assert words[0] == ".venv/bin/auditor"
    params = parse_command_line(words[1:]).params
    assert (ROOT / params["model"]).is_file()
    assert set(params["formats"]) <= set(FORMATS)


def test_files_the_jobs_read_are_the_files_the_audit_writes() -> None:
    section = _ci_section()
    for name in re.findall(r"audit-report/([\w.]+)", section):
        assert name in ("report.md", "report.junit.xml"), name
