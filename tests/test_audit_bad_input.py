"""`auditor audit` end to end on tiny models and probes made here: each bad input is exit 2 with a
one-line reason and leaves no half-written output; odd but valid input is reported, not hidden."""
from __future__ import annotations

import json
import pickle

import torch

from auditor.cli import main
from tests.conftest import SMALL_CHECKS
from tests.model_fixtures import NaNModel, Touch, make_tiny
from tests.probe_fixtures import manifest_probe, write_garbage, write_image

HEADER = ["path", "label", "gender", "age", "race"]


def _rows(n=12, race=lambda i: "white" if i % 2 else "black"):
    return [[f"img/{i}.png", str(i % 3), "male" if i % 3 else "female", str(20 + i), race(i)] for i in range(n)]


def _probe(tmp_path, rows=None, size=(16, 16)):
    folder = manifest_probe(tmp_path / "probe", HEADER, rows or _rows(), images=False)
    for row in rows or _rows():
        write_image(folder / row[0], size=size)
    return folder


def _scripted(tmp_path, module=None):
    path = tmp_path / "model.ts"
    torch.jit.script(module if module is not None else make_tiny(3)).save(str(path))
    return path


def _run(tmp_path, model, probe, *extra):
    out = tmp_path / "out"
    code = main(["audit", str(model), "--probe", str(probe), "--out", str(out), "--device", "cpu", *SMALL_CHECKS,
                 "--param", "group_metrics.min_group_size=1", *extra])
    return code, out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_script_tag_in_a_group_label_is_escaped_in_the_html(tmp_path):
    probe = _probe(tmp_path, _rows(race=lambda i: "<script>alert(1)</script>" if i % 2 else "b"))
    code, out = _run(tmp_path, _scripted(tmp_path), probe)
    html = (out / "report.html").read_text()
    assert code in (0, 1)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html


def test_unreadable_image_is_skipped_counted_and_named_in_the_report(tmp_path):
    probe = _probe(tmp_path)
    write_garbage(probe / "img" / "5.png")
    code, out = _run(tmp_path, _scripted(tmp_path), probe)
    results = json.loads((out / "results.json").read_text())
    assert code in (0, 1)
    assert results["probe"]["n_skipped"] == 1
    assert results["probe"]["skipped"][0]["path"] == "img/5.png"
    assert "img/5.png" in (out / "report.html").read_text()
    assert results["checks"]["group_metrics"]["metrics"]["overall"]["n"] == 11


def test_strict_turns_an_unreadable_image_into_exit_2(tmp_path, capsys):
    probe = _probe(tmp_path)
    write_garbage(probe / "img" / "5.png")
    code, out = _run(tmp_path, _scripted(tmp_path), probe, "--strict")
    assert code == 2
    assert "5.png" in _one_line_error(capsys)
    assert not (out / "results.json").exists()


def test_output_width_that_does_not_fit_the_probe_classes_is_exit_2(tmp_path, capsys):
    rows = [[f"img/{i}.png", str(i % 5), "male", "30", "white"] for i in range(10)]
    code, _ = _run(tmp_path, _scripted(tmp_path), _probe(tmp_path, rows))
    assert code == 2
    assert "outputs 3 classes" in _one_line_error(capsys)


def test_non_finite_outputs_are_exit_2(tmp_path, capsys):
    code, _ = _run(tmp_path, _scripted(tmp_path, NaNModel().eval()), _probe(tmp_path))
    assert code == 2
    assert "finite" in _one_line_error(capsys).lower()


def test_wrong_input_size_is_exit_2_with_one_line(tmp_path, capsys):
    code, _ = _run(tmp_path, _scripted(tmp_path), _probe(tmp_path, size=(8, 8)))
    assert code == 2
    assert "model.ts" in _one_line_error(capsys)


def test_empty_probe_is_exit_2(tmp_path, capsys):
    folder = manifest_probe(tmp_path / "probe", HEADER, [], images=False)
    code, _ = _run(tmp_path, _scripted(tmp_path), folder)
    assert code == 2
    assert "manifest.csv" in _one_line_error(capsys)


def test_probe_without_annotation_columns_is_exit_2(tmp_path, capsys):
    folder = manifest_probe(tmp_path / "probe", ["path", "label"], [[f"img/{i}.png", str(i % 3)] for i in range(6)])
    code, _ = _run(tmp_path, _scripted(tmp_path), folder)
    assert code == 2
    assert "annotation" in _one_line_error(capsys)


def test_invalid_policy_is_exit_2_before_any_work(tmp_path, capsys):
    policy = tmp_path / "p.yaml"
    policy.write_text("clauses:\n  - metric: checks.group_metrics.metrics.*.acuracy_difference\n    op: '<'\n    threshold: 0.1\n")
    code, out = _run(tmp_path, _scripted(tmp_path), _probe(tmp_path), "--policy", str(policy))
    assert code == 2
    assert "accuracy_difference" in _one_line_error(capsys)
    assert not out.exists()


def test_pickle_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "pwned"
    model = tmp_path / "model.pt"
    with open(model, "wb") as f:
        pickle.dump({"x": Touch(marker)}, f)
    code, _ = _run(tmp_path, model, _probe(tmp_path))
    assert code == 2
    assert "--trust-pickle" in _one_line_error(capsys)
    assert not marker.exists()


def test_intersection_free_small_probe_still_reports_every_group(tmp_path):
    code, out = _run(tmp_path, _scripted(tmp_path), _probe(tmp_path))
    by_group = json.loads((out / "results.json").read_text())["checks"]["group_metrics"]["by_group"]
    assert set(by_group["race"]) == {"white", "black"}
    assert sum(g["n"] for g in by_group["gender"].values()) == 12


def test_out_path_that_is_a_file_is_exit_2_and_left_alone(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    code = main(["audit", str(_scripted(tmp_path)), "--probe", str(_probe(tmp_path)), "--out", str(target), "--device", "cpu", *SMALL_CHECKS])
    assert code == 2
    assert "is a file" in _one_line_error(capsys)
    assert target.read_text() == "keep me"
