"""One audit per output folder: staged, locked, swapped in whole; refused without --force; the manifest."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from auditor import outdir
from auditor.api import _config as audit_config
from auditor.api import AuditConfig, run_audit
from auditor.outdir import render_outputs
from auditor.cli import main
from auditor.errors import UsageError
from auditor.outdir import check_folder, folder_lock, sha256_file
from tests.conftest import ROOT, SAMPLE_MODELS
from tests.report_fixtures import results_v1

OLD = results_v1()
NEW = {**results_v1(), "created": "2030-01-01T00:00:00Z"}
TINY = ("--probe", "synth:faces:n=120", "--checks", "group_metrics", "--budget", "quick", "--device", "cpu",
        "--param", "group_metrics.n_boot=0")


def _state(out: Path) -> tuple[list[str], str]:
    return sorted(p.name for p in out.iterdir()), sha256_file(out / "results.json")


def _old_folder(parent: Path) -> tuple[Path, tuple[list[str], str]]:
    out = render_outputs(OLD, parent / "out", ["json", "md", "junit"])["json"].parent
    return out, _state(out)


class _Interrupt:
    """Ctrl-C just before (or just after) the k-th file-system step of the output code."""

    STEPS = [(os, "replace"), (os, "rename"), (os, "mkdir"), (os, "fsync"), (shutil, "rmtree"), (outdir, "_exchange")]

    def __init__(self, k: int | None, after: bool) -> None:
        self.k, self.after, self.n = k, after, 0

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kw: Any) -> Any:
            i, self.n = self.n, self.n + 1
            if i == self.k and not self.after:
                raise KeyboardInterrupt
            result = fn(*args, **kw)
            if i == self.k and self.after:
                raise KeyboardInterrupt
            return result
        return step

    @contextlib.contextmanager
    def armed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        with monkeypatch.context() as m:
            for module, name in self.STEPS:
                m.setattr(module, name, self._wrap(getattr(module, name)))
            yield


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_an_interrupt_at_any_step_leaves_the_whole_old_or_the_whole_new_folder(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(outdir, "_exchange", lambda a, b: False)
    counter = _Interrupt(None, False)
    out, old = _old_folder(tmp_path / "count")
    with counter.armed(monkeypatch):
        render_outputs(NEW, out, ["json"], force=True)
    new = _state(out)
    assert new != old and counter.n > 8
    outcomes = set()
    for k in range(counter.n):
        for after in (False, True):
            out, _ = _old_folder(tmp_path / f"{k}-{after}")
            with contextlib.suppress(KeyboardInterrupt), _Interrupt(k, after).armed(monkeypatch):
                render_outputs(NEW, out, ["json"], force=True)
            assert _state(out) in (old, new), (k, after)
            assert check_folder(out) == [], (k, after)
            outcomes.add(_state(out) == new)
            render_outputs(NEW, out, ["json"], force=True)  # the next run cleans up after it
            assert [p.name for p in out.parent.iterdir()] == ["out"], (k, after)
    assert outcomes == {False, True}


def test_a_crash_between_the_two_renames_is_undone_by_the_next_run(tmp_path):
    out, old = _old_folder(tmp_path)
    os.rename(out, tmp_path / ".out.old-abcd1234")  # killed after moving the old folder aside ...
    (tmp_path / ".out.tmp-wxyz5678").mkdir()  # ... with the new one still staged
    with pytest.raises(UsageError, match="holds an earlier audit"):
        render_outputs(NEW, out, ["json"])
    assert _state(out) == old and check_folder(out) == []
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_leftovers_of_other_folders_are_not_touched(tmp_path):
    (tmp_path / ".out.tmp-x.tmp-abcd1234").mkdir()  # staging of a folder named "out.tmp-x"
    (tmp_path / ".out.tmp-keep").mkdir()
    render_outputs(NEW, tmp_path / "out", ["json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.tmp-keep", ".out.tmp-x.tmp-abcd1234", "out"]


def test_an_earlier_audit_is_refused_without_force_and_left_alone(tmp_path):
    out, old = _old_folder(tmp_path)
    with pytest.raises(UsageError, match=r"holds an earlier audit; pass --force to replace it, or another --out"):
        render_outputs(NEW, out, ["json"])
    assert _state(out) == old


def test_force_replaces_the_folder_whole(tmp_path):
    out, _ = _old_folder(tmp_path)
    render_outputs(NEW, out, ["json", "md"], force=True)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "report.md", "results.json"]  # no report.junit.xml
    assert json.loads((out / "results.json").read_text())["created"] == NEW["created"]


def test_a_non_empty_folder_without_results_json_is_refused_even_with_force(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty and holds no audit .* pass a new or empty folder"):
        render_outputs(NEW, tmp_path, ["json"], force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_an_empty_folder_is_used_and_gets_the_mode_a_new_folder_would(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "ref").mkdir()
    render_outputs(NEW, tmp_path / "out", ["json"])
    assert (tmp_path / "out" / "results.json").is_file()
    assert (tmp_path / "out").stat().st_mode == (tmp_path / "ref").stat().st_mode


def test_a_folder_another_audit_is_writing_to_is_refused_at_once_naming_its_pid(tmp_path):
    with folder_lock(tmp_path / "out"):
        with pytest.raises(UsageError, match=rf"another audit is writing to .*out \(pid {os.getpid()}\); wait for it or pass another --out"):
            render_outputs(NEW, tmp_path / "out", ["json"])
    assert list(tmp_path.iterdir()) == []  # nothing written, and the lock file is gone


def test_the_manifest_records_each_file_and_the_results_each_report_came_from(tmp_path):
    out, _ = _old_folder(tmp_path)
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert set(files) == {"results.json", "report.md", "report.junit.xml"}
    assert files["report.md"] == {"sha256": sha256_file(out / "report.md"), "results_sha256": sha256_file(out / "results.json")}
    (out / "results.json").write_text(json.dumps(NEW))  # results replaced behind the reports' back
    assert "report.md was rendered from another results.json" in check_folder(out)


def test_ctrl_c_during_an_audit_leaves_the_earlier_folder_and_no_leftovers(tmp_path, monkeypatch):
    out, old = _old_folder(tmp_path)

    def interrupted(*args: Any, **kw: Any) -> None:
        assert len(list(tmp_path.glob(".out.tmp-*"))) == 1 and (tmp_path / ".out.lock").exists()  # staged and locked
        raise KeyboardInterrupt

    monkeypatch.setattr(audit_config, "load_model", interrupted)  # where AuditConfig loads its model
    with pytest.raises(KeyboardInterrupt):
        run_audit(AuditConfig(model=str(SAMPLE_MODELS["clean_cnn"]), out_dir=out, force=True, formats=["json"]))
    assert _state(out) == old and [p.name for p in tmp_path.iterdir()] == ["out"]


# --- the CLI --------------------------------------------------------------------------------------


def test_report_of_a_folder_rerenders_in_place_and_updates_the_manifest(tmp_path, capsys):
    out, _ = _old_folder(tmp_path)
    assert main(["report", str(out), "--format", "html"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    assert check_folder(out) == [] and "report.html" in json.loads((out / "manifest.json").read_text())["files"]


def test_report_of_a_folder_without_results_json_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--format", "md"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no results.json" in err


@pytest.fixture(scope="module")
def raced(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess[str]]]:
    """Two audits started at once into one folder."""
    out = tmp_path_factory.mktemp("raced") / "out"
    cmd = [sys.executable, "-m", "auditor", "audit", str(SAMPLE_MODELS["clean_cnn"]), *TINY, "--format", "json,md",
           "--out", str(out)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [subprocess.CompletedProcess(cmd, p.wait(timeout=300), *p.communicate()) for p in procs]
    return out, done


def test_two_audits_at_once_into_one_folder_one_writes_it_the_other_exits_2(raced):
    out, done = raced
    assert sorted(p.returncode for p in done) == [0, 2], [p.stderr[-500:] for p in done]
    loser = next(p for p in done if p.returncode == 2)
    assert loser.stderr.strip().splitlines()[-1].startswith(f"auditor: error: another audit is writing to {out} (pid ")
    assert check_folder(out) == [] and (out / "report.md").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def test_audit_into_an_earlier_audit_is_refused_before_any_work(raced, capsys):
    out, _ = raced
    before = _state(out)
    assert main(["audit", "no-such-model.pt", *TINY, "--out", str(out)]) == 2  # the model is never looked at
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err and "another --out" in err
    assert _state(out) == before


def test_a_json_only_rerun_with_force_leaves_no_report_of_the_earlier_run(raced, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(raced[0], out)
    assert main(["audit", str(SAMPLE_MODELS["clean_cnn"]), *TINY, "--format", "json", "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "results.json"] and check_folder(out) == []
