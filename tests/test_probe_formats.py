"""Probe formats: what `open_probe` reads from each format, and what it refuses."""
from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pytest

from auditor.errors import ProbeError
from probes import format_summary, open_probe, summarize
from probe_fixtures import celeba_probe, manifest_probe, write_csv, write_image

MANIFEST = ("path", "label", "gender", "age", "race")


def rows_of(probe, column):
    return probe.table[column].tolist()


# --- manifest ------------------------------------------------------------------------------------


def test_manifest_label_names_become_sorted_classes(tmp_path):
    manifest_probe(tmp_path, MANIFEST, [("a.png", "dog", "female", "25", "black"), ("b.png", "cat", "male", "41", "white")])
    probe = open_probe(str(tmp_path))
    assert probe.format == "manifest"
    assert probe.classes == ["cat", "dog"]
    assert rows_of(probe, "label") == [1, 0]
    assert probe.target == "label"


def test_manifest_integer_labels_are_class_indices(tmp_path):
    manifest_probe(tmp_path, MANIFEST, [("a.png", "2", "female", "25", "black"), ("b.png", "0", "male", "41", "white")])
    probe = open_probe(str(tmp_path))
    assert probe.classes == ["0", "1", "2"]
    assert rows_of(probe, "label") == [2, 0]


def test_manifest_label_names_follow_the_models_class_names(tmp_path):
    manifest_probe(tmp_path, MANIFEST, [("a.png", "dog", "female", "25", "black"), ("b.png", "cat", "male", "41", "white")])
    probe = open_probe(str(tmp_path), class_names=["dog", "cat"])
    assert probe.classes == ["dog", "cat"]
    assert rows_of(probe, "label") == [0, 1]


def test_default_sensitive_attributes_are_gender_age_race(tmp_path):
    manifest_probe(tmp_path, MANIFEST, [("a.png", "0", "female", "25", "black"), ("b.png", "1", "male", "41", "white")])
    probe = open_probe(str(tmp_path))
    assert probe.attributes == ["gender", "age", "race"]
    assert probe.group_counts() == {
        "gender": {"female": 1, "male": 1},
        "age": {"20-39": 1, "40-59": 1},
        "race": {"black": 1, "white": 1},
    }


def test_default_sensitive_keeps_only_present_columns(tmp_path):
    manifest_probe(tmp_path, ("path", "label", "gender"), [("a.png", "0", "female"), ("b.png", "1", "male")])
    assert open_probe(str(tmp_path)).attributes == ["gender"]


def test_ages_in_years_are_bucketed_with_raw_value_kept(tmp_path):
    ages = ["5", "19", "20", "39", "40", "60", "85", ""]
    manifest_probe(tmp_path, ("path", "label", "age"), [(f"{i}.png", "0", a) for i, a in enumerate(ages)])
    probe = open_probe(str(tmp_path))
    assert rows_of(probe, "age") == ["0-19", "0-19", "20-39", "20-39", "40-59", "60+", "60+", None]
    assert rows_of(probe, "age_raw") == ["5", "19", "20", "39", "40", "60", "85", None]


def test_age_ranges_are_bucketed_by_midpoint(tmp_path):
    # 3-9 -> 6; 30-39 -> 34.5; 50-59 -> 54.5; "more than 70" -> 70
    ages = ["3-9", "30-39", "50-59", "more than 70"]
    manifest_probe(tmp_path, ("path", "label", "age"), [(f"{i}.png", "0", a) for i, a in enumerate(ages)])
    assert rows_of(open_probe(str(tmp_path)), "age") == ["0-19", "20-39", "40-59", "60+"]


def test_age_buckets_are_configurable(tmp_path):
    manifest_probe(tmp_path, ("path", "label", "age"), [("a.png", "0", "25"), ("b.png", "0", "31")])
    assert rows_of(open_probe(str(tmp_path), age_buckets="0-29,30+"), "age") == ["0-29", "30+"]


def test_empty_cells_are_missing(tmp_path):
    manifest_probe(tmp_path, MANIFEST, [("a.png", "0", "", "25", "black"), ("b.png", "1", "male", "41", "white")])
    probe = open_probe(str(tmp_path))
    assert rows_of(probe, "gender") == [None, "male"]
    assert probe.group_counts(["gender"]) == {"gender": {"(missing)": 1, "male": 1}}


def test_target_gender_makes_gender_the_label(tmp_path):
    manifest_probe(tmp_path, MANIFEST, [("a.png", "dog", "male", "25", "black"), ("b.png", "cat", "female", "41", "white")])
    probe = open_probe(str(tmp_path), target="gender")
    assert probe.target == "gender"
    assert probe.classes == ["female", "male"]
    assert rows_of(probe, "label") == [1, 0]
    assert probe.attributes == ["age", "race"]


def test_any_column_can_be_named_sensitive(tmp_path):
    manifest_probe(tmp_path, ("path", "label", "skin"), [("a.png", "0", "dark"), ("b.png", "1", "light")])
    probe = open_probe(str(tmp_path), sensitive=["skin"])
    assert probe.attributes == ["skin"]
    assert probe.group_counts() == {"skin": {"dark": 1, "light": 1}}


def test_sensitive_may_be_a_comma_separated_string(tmp_path):
    manifest_probe(tmp_path, MANIFEST, [("a.png", "0", "male", "25", "black")])
    assert open_probe(str(tmp_path), sensitive="race, gender").attributes == ["race", "gender"]


def test_requested_sensitive_that_is_missing_lists_the_columns(tmp_path):
    manifest_probe(tmp_path, MANIFEST, [("a.png", "0", "male", "25", "black")])
    with pytest.raises(ProbeError, match=r"no column 'skin'.*'gender', 'age', 'race'"):
        open_probe(str(tmp_path), sensitive=["skin"])


def test_attribute_named_overall_is_refused(tmp_path):
    manifest_probe(tmp_path, ("path", "label", "overall"), [("a.png", "0", "x")])
    with pytest.raises(ProbeError, match="reserved"):
        open_probe(str(tmp_path), sensitive=["overall"])


def test_probe_without_annotation_column_is_refused(tmp_path):
    manifest_probe(tmp_path, ("path", "label"), [("a.png", "0")])
    with pytest.raises(ProbeError, match="no annotation column.*--sensitive"):
        open_probe(str(tmp_path))


def test_empty_manifest_is_refused(tmp_path):
    manifest_probe(tmp_path, MANIFEST, [])
    with pytest.raises(ProbeError, match="lists no images"):
        open_probe(str(tmp_path))


def test_manifest_without_path_column_is_refused(tmp_path):
    manifest_probe(tmp_path, ("file", "label", "gender"), [("a.png", "0", "male")], images=False)
    with pytest.raises(ProbeError, match="no 'path' column"):
        open_probe(str(tmp_path))


def test_missing_target_column_is_refused(tmp_path):
    manifest_probe(tmp_path, ("path", "gender"), [("a.png", "male")])
    with pytest.raises(ProbeError, match="no column 'label'.*--target"):
        open_probe(str(tmp_path))


@pytest.mark.parametrize("rel", ["../x.png", "sub/../../x.png", "/etc/passwd"])
def test_image_path_leaving_the_folder_is_refused(tmp_path, rel):
    probe_dir = tmp_path / "probe"
    manifest_probe(probe_dir, ("path", "label", "gender"), [("a.png", "0", "male"), (rel, "0", "male")], images=False)
    with pytest.raises(ProbeError, match="row 2"):
        open_probe(str(probe_dir))


def test_symlink_pointing_outside_the_folder_is_refused(tmp_path):
    outside = write_image(tmp_path / "outside.png")
    probe_dir = tmp_path / "probe"
    manifest_probe(probe_dir, ("path", "label", "gender"), [("link.png", "0", "male")], images=False)
    (probe_dir / "link.png").symlink_to(outside)
    with pytest.raises(ProbeError, match="escapes the probe folder"):
        open_probe(str(probe_dir))


def test_symlinked_folder_pointing_outside_is_refused(tmp_path):
    write_image(tmp_path / "elsewhere" / "a.png")
    probe_dir = tmp_path / "probe"
    manifest_probe(probe_dir, ("path", "label", "gender"), [("imgs/a.png", "0", "male")], images=False)
    (probe_dir / "imgs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ProbeError, match="escapes the probe folder"):
        open_probe(str(probe_dir))


def test_path_with_dotdot_staying_inside_is_accepted(tmp_path):
    manifest_probe(tmp_path, ("path", "label", "gender"), [("sub/../a.png", "0", "male")])
    assert len(open_probe(str(tmp_path))) == 1


def test_missing_image_file_is_not_an_error_at_open(tmp_path):
    manifest_probe(tmp_path, ("path", "label", "gender"), [("gone.png", "0", "male")], images=False)
    assert len(open_probe(str(tmp_path))) == 1


def test_subject_box_is_parsed_to_floats(tmp_path):
    manifest_probe(tmp_path, ("path", "label", "gender", "subject_box"), [("a.png", "0", "male", "1,2,6,7"), ("b.png", "0", "male", "")])
    probe = open_probe(str(tmp_path))
    assert probe.subject_box(0) == (1.0, 2.0, 6.0, 7.0)
    assert probe.subject_box(1) is None


def test_malformed_subject_box_names_the_line(tmp_path):
    manifest_probe(tmp_path, ("path", "label", "gender", "subject_box"), [("a.png", "0", "male", "1,2,6,7"), ("b.png", "0", "male", "6,2,1")])
    with pytest.raises(ProbeError, match=r"manifest.csv line 3: subject_box '6,2,1'"):
        open_probe(str(tmp_path))


def test_subject_mask_leaving_the_folder_is_refused(tmp_path):
    probe_dir = tmp_path / "probe"
    manifest_probe(probe_dir, ("path", "label", "gender", "subject_mask"), [("a.png", "0", "male", "../mask.png")])
    with pytest.raises(ProbeError, match="escapes the probe folder"):
        open_probe(str(probe_dir))


def test_manifest_file_itself_can_be_the_source(tmp_path):
    manifest_probe(tmp_path, ("path", "label", "gender"), [("a.png", "0", "male")])
    probe = open_probe(str(tmp_path / "manifest.csv"))
    assert probe.format == "manifest"
    assert probe.image_path(0) == (tmp_path / "a.png").resolve()


def test_nonexistent_probe_is_refused_naming_the_formats(tmp_path):
    with pytest.raises(ProbeError, match=r"nope does not exist.*manifest\.csv.*UTKFace.*FairFace.*CelebA"):
        open_probe(str(tmp_path / "nope"))


def test_folder_of_no_known_format_is_refused_naming_the_formats(tmp_path):
    write_image(tmp_path / "cat.png")
    with pytest.raises(ProbeError, match=r"matches no probe format.*manifest\.csv"):
        open_probe(str(tmp_path))


# --- UTKFace -------------------------------------------------------------------------------------

UTK_NAMES = ["34_1_2_20170116174525125.jpg.chip.jpg", "8_0_4_20161219203650636.jpg", "70_0_1_20170120134639935.jpg"]


def utk_folder(folder: Path, names=UTK_NAMES) -> Path:
    for name in names:
        if name.endswith((".jpg", ".png")):
            write_image(folder / name)
        else:
            (folder / name).write_text("not an image")
    return folder


def test_utkface_codes_map_to_names(tmp_path):
    probe = open_probe(str(utk_folder(tmp_path)))
    assert probe.format == "utkface"
    by_path = probe.table.set_index("path")
    row = by_path.loc["34_1_2_20170116174525125.jpg.chip.jpg"]
    assert (row["gender"], row["race"], row["age"], row["age_raw"]) == ("female", "asian", "20-39", "34")
    row = by_path.loc["8_0_4_20161219203650636.jpg"]
    assert (row["gender"], row["race"], row["age"]) == ("male", "others", "0-19")
    row = by_path.loc["70_0_1_20170120134639935.jpg"]
    assert (row["gender"], row["race"], row["age"]) == ("male", "black", "60+")


def test_utkface_default_target_is_gender_in_the_codes_order(tmp_path):
    probe = open_probe(str(utk_folder(tmp_path)))
    assert probe.target == "gender"
    assert probe.classes == ["male", "female"]  # code 0 male, 1 female: a model trained on the codes has output 0 = male
    assert probe.meta["class_order"] == "codes"
    assert dict(zip(rows_of(probe, "path"), rows_of(probe, "label")))["34_1_2_20170116174525125.jpg.chip.jpg"] == 1
    assert probe.attributes == ["age", "race"]


def test_utkface_race_as_target_keeps_all_five_codes_in_order(tmp_path):
    probe = open_probe(str(utk_folder(tmp_path)), target="race")
    assert probe.classes == ["white", "black", "asian", "indian", "others"]


def test_utkface_labels_follow_the_model_classes_when_declared(tmp_path):
    probe = open_probe(str(utk_folder(tmp_path)), class_names=["female", "male"])
    assert probe.meta["class_order"] == "model"
    assert dict(zip(rows_of(probe, "path"), rows_of(probe, "label")))["34_1_2_20170116174525125.jpg.chip.jpg"] == 0


def test_celeba_minus_one_is_code_zero(tmp_path):
    probe = open_probe(str(celeba_probe(tmp_path, CELEBA_NAMES, CELEBA_ROWS)), target="male", sensitive=["young"])
    assert probe.classes == ["female", "male"] and probe.meta["class_order"] == "codes"
    smiling = open_probe(str(celeba_probe(tmp_path, CELEBA_NAMES, CELEBA_ROWS)))
    assert smiling.classes == ["no", "yes"] and smiling.meta["class_order"] == "codes"


def test_plain_string_labels_have_no_canonical_order(tmp_path):
    probe = open_probe(str(fairface_folder(tmp_path)))
    assert probe.meta["class_order"] == "sorted"
    assert probe.classes == sorted(probe.classes)


def test_utkface_unparsable_names_are_skipped_and_counted(tmp_path):
    bad = ["39_1_20170116174525125.jpg.chip.jpg", "face.png"]
    probe = open_probe(str(utk_folder(tmp_path, UTK_NAMES + bad + ["notes.txt"])))
    assert len(probe) == 3
    assert probe.meta["n_unparsed"] == 2
    assert probe.meta["unparsed"] == sorted(bad)


def test_utkface_unparsable_names_are_logged(tmp_path, caplog):
    utk_folder(tmp_path, UTK_NAMES + ["face.png"])
    with caplog.at_level(logging.WARNING, logger="probes.utkface"):
        open_probe(str(tmp_path))
    assert "skipped 1 image(s)" in caplog.text and "face.png" in caplog.text


# --- FairFace ------------------------------------------------------------------------------------

FAIRFACE_ROWS = [
    ("val/1.jpg", "50-59", "Male", "East Asian", "True"),
    ("val/2.jpg", "more than 70", "Female", "White", "False"),
    ("val/3.jpg", "3-9", "Female", "Indian", "True"),
]


def fairface_folder(folder: Path, csv_name: str = "fairface_label_val.csv") -> Path:
    write_csv(folder / csv_name, ("file", "age", "gender", "race", "service_test"), FAIRFACE_ROWS)
    for row in FAIRFACE_ROWS:
        write_image(folder / row[0])
    return folder / csv_name


def test_fairface_csv_is_read_with_age_ranges_bucketed(tmp_path):
    probe = open_probe(str(fairface_folder(tmp_path)))
    assert probe.format == "fairface"
    assert rows_of(probe, "age") == ["40-59", "60+", "0-19"]
    assert rows_of(probe, "age_raw") == ["50-59", "more than 70", "3-9"]
    assert rows_of(probe, "race") == ["east asian", "white", "indian"]


def test_fairface_default_target_is_gender(tmp_path):
    probe = open_probe(str(fairface_folder(tmp_path)))
    assert probe.classes == ["female", "male"]
    assert rows_of(probe, "label") == [1, 0, 0]
    assert probe.attributes == ["age", "race"]


def test_fairface_image_paths_are_relative_to_the_csv(tmp_path):
    probe = open_probe(str(fairface_folder(tmp_path / "ff")))
    assert probe.image_path(0) == (tmp_path / "ff" / "val" / "1.jpg").resolve()


def test_fairface_folder_with_one_label_csv_is_read(tmp_path):
    fairface_folder(tmp_path)
    assert len(open_probe(str(tmp_path))) == 3


def test_fairface_folder_with_two_label_csvs_asks_for_one(tmp_path):
    fairface_folder(tmp_path, "fairface_label_train.csv")
    fairface_folder(tmp_path, "fairface_label_val.csv")
    with pytest.raises(ProbeError, match="several FairFace CSVs"):
        open_probe(str(tmp_path))


# --- CelebA --------------------------------------------------------------------------------------

CELEBA_NAMES = ("Male", "Smiling", "Young")
CELEBA_ROWS = [("000001.jpg", "-1", "1", "1"), ("000002.jpg", "1", "-1", "-1"), ("000003.jpg", "-1", "1", "-1")]


def test_celeba_attributes_become_yes_no_and_male_becomes_gender(tmp_path):
    probe = open_probe(str(celeba_probe(tmp_path, CELEBA_NAMES, CELEBA_ROWS)))
    assert probe.format == "celeba"
    assert rows_of(probe, "gender") == ["female", "male", "female"]
    assert rows_of(probe, "young") == ["yes", "no", "no"]


def test_celeba_default_target_is_smiling(tmp_path):
    probe = open_probe(str(celeba_probe(tmp_path, CELEBA_NAMES, CELEBA_ROWS)))
    assert probe.target == "smiling"
    assert probe.classes == ["no", "yes"]
    assert rows_of(probe, "label") == [1, 0, 1]
    assert probe.attributes == ["gender"]


def test_celeba_target_can_be_any_attribute_by_its_original_name(tmp_path):
    probe = open_probe(str(celeba_probe(tmp_path, CELEBA_NAMES, CELEBA_ROWS)), target="Young", sensitive=["Male", "Smiling"])
    assert probe.target == "young"
    assert rows_of(probe, "label") == [1, 0, 0]
    assert probe.attributes == ["gender", "smiling"]


def test_celeba_images_are_found_in_img_align_celeba(tmp_path):
    probe = open_probe(str(celeba_probe(tmp_path, CELEBA_NAMES, CELEBA_ROWS)))
    assert probe.image_path(0) == (tmp_path / "img_align_celeba" / "000001.jpg").resolve()


def test_celeba_images_beside_the_attribute_file_are_found(tmp_path):
    probe = open_probe(str(celeba_probe(tmp_path, CELEBA_NAMES, CELEBA_ROWS, image_dir=".")))
    assert probe.image_path(0) == (tmp_path / "000001.jpg").resolve()


def test_celeba_value_other_than_plus_minus_one_names_the_line(tmp_path):
    celeba_probe(tmp_path, CELEBA_NAMES, [CELEBA_ROWS[0], ("000002.jpg", "1", "2", "1")])
    with pytest.raises(ProbeError, match=r"line 4: Smiling is 2, not 1 or -1"):
        open_probe(str(tmp_path))


# --- synthetic probes and the summary --------------------------------------------------------------


def test_synth_source_is_handed_to_open_synth(monkeypatch):
    calls = []
    fake = types.ModuleType("probes.synth")
    fake.open_synth = lambda source, **kw: calls.append((source, kw)) or "probe"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "probes.synth", fake)
    assert open_probe("synth:faces", target="gender", sensitive=["race"]) == "probe"
    assert calls == [("synth:faces", {"target": "gender", "sensitive": ["race"],
                                      "age_buckets": "0-19,20-39,40-59,60+", "class_names": None})]


def test_summary_counts_classes_and_groups(tmp_path):
    rows = [("a.png", "cat", "female", "25", "black"), ("b.png", "dog", "male", "41", "white"), ("c.png", "dog", "male", "", "black")]
    summary = summarize(open_probe(str(manifest_probe(tmp_path, MANIFEST, rows))))
    assert (summary["n"], summary["format"], summary["target"], summary["n_unparsed"]) == (3, "manifest", "label", 0)
    assert summary["class_counts"] == {"cat": 1, "dog": 2}
    assert summary["attributes"] == {
        "gender": {"female": 1, "male": 2},
        "age": {"(missing)": 1, "20-39": 1, "40-59": 1},
        "race": {"black": 2, "white": 1},
    }


def test_formatted_summary_has_a_row_per_class_and_group(tmp_path):
    rows = [("a.png", "cat", "female", "25", "black"), ("b.png", "dog", "male", "41", "white"), ("c.png", "dog", "male", "41", "black")]
    text = format_summary(summarize(open_probe(str(manifest_probe(tmp_path, MANIFEST, rows)))))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "dog 2 66.7%" in lines
    assert "attribute: race" in lines
    assert "black 2 66.7%" in lines
