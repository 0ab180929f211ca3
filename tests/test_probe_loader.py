"""The streaming loader: batches of [0, 1] RGB tensors at the input size, unreadable images skipped and reported."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

import probes.base
from auditor.errors import ProbeError
from probes import Batch, ProbeDataset, make_loader, open_probe, probe_image_size
from probe_fixtures import manifest_probe, write_garbage, write_image

HEADER = ("path", "label", "gender")


def probe_of(tmp_path, names, **kw):
    return open_probe(str(manifest_probe(tmp_path, HEADER, [(n, "0", "male") for n in names], **kw)))


def all_indices(loader):
    return [i for batch in loader for i in batch.indices.tolist()]


def test_batch_images_are_float_rgb_in_unit_range(tmp_path):
    probe = probe_of(tmp_path, ["a.png"])  # solid (255, 0, 128)
    batch = next(iter(make_loader(probe, (8, 8))))
    assert isinstance(batch, Batch)
    assert batch.images.dtype == torch.float32
    assert batch.images.shape == (1, 3, 8, 8)
    assert batch.images[0, :, 3, 3].tolist() == pytest.approx([1.0, 0.0, 128 / 255])


def test_grayscale_image_is_read_as_rgb(tmp_path):
    probe = probe_of(tmp_path, ["g.png"], images=False)
    Image.new("L", (8, 8), 51).save(tmp_path / "g.png")
    batch = next(iter(make_loader(probe, (8, 8))))
    assert batch.images[0, :, 0, 0].tolist() == pytest.approx([0.2, 0.2, 0.2])


def test_images_are_resized_to_the_input_size(tmp_path):
    probe = probe_of(tmp_path, ["a.png", "b.png"])  # 8x8
    batch = next(iter(make_loader(probe, (4, 6))))
    assert batch.images.shape == (2, 3, 4, 6)
    assert torch.equal(batch.images[0, 0], torch.ones(4, 6))  # a solid colour stays solid


def test_batches_follow_batch_size(tmp_path):
    probe = probe_of(tmp_path, [f"{i}.png" for i in range(5)])
    assert [len(b) for b in make_loader(probe, (8, 8), batch_size=2)] == [2, 2, 1]


def test_order_is_the_probe_order_and_repeats(tmp_path):
    probe = probe_of(tmp_path, [f"{i}.png" for i in range(7)])
    loader = make_loader(probe, (8, 8), batch_size=3)
    assert all_indices(loader) == [0, 1, 2, 3, 4, 5, 6]
    assert all_indices(loader) == [0, 1, 2, 3, 4, 5, 6]


def test_indices_select_rows_in_the_given_order(tmp_path):
    probe = probe_of(tmp_path, [f"{i}.png" for i in range(5)])
    assert all_indices(make_loader(probe, (8, 8), indices=[4, 1, 3])) == [4, 1, 3]


def test_worker_processes_keep_the_order(tmp_path):
    probe = probe_of(tmp_path, [f"{i}.png" for i in range(6)])
    assert all_indices(make_loader(probe, (8, 8), batch_size=2, num_workers=2)) == [0, 1, 2, 3, 4, 5]


def test_corrupt_image_is_skipped_and_reported(tmp_path):
    probe = probe_of(tmp_path, ["a.png", "bad.png", "c.png"])
    write_garbage(tmp_path / "bad.png")
    batch = next(iter(make_loader(probe, (8, 8))))
    assert batch.indices.tolist() == [0, 2]
    assert batch.images.shape == (2, 3, 8, 8)
    assert [i for i, _ in batch.failed] == [1]
    assert "bad.png" in batch.failed[0][1]


def test_missing_file_is_skipped_and_reported(tmp_path):
    probe = probe_of(tmp_path, ["a.png", "gone.png"])
    (tmp_path / "gone.png").unlink()
    batch = next(iter(make_loader(probe, (8, 8))))
    assert batch.indices.tolist() == [0]
    assert [i for i, _ in batch.failed] == [1]
    assert "gone.png" in batch.failed[0][1]


def test_batch_where_every_image_failed_is_empty(tmp_path):
    probe = probe_of(tmp_path, ["x.png", "y.png"], images=False)
    batch = next(iter(make_loader(probe, (4, 5))))
    assert batch.images.shape == (0, 3, 4, 5)
    assert batch.indices.tolist() == []
    assert [i for i, _ in batch.failed] == [0, 1]


def test_dataset_item_of_unreadable_image_is_zeros_with_message(tmp_path):
    probe = probe_of(tmp_path, ["gone.png"], images=False)
    image, index, error, size = ProbeDataset(probe, (2, 3))[0]
    assert image.tolist() == torch.zeros(3, 2, 3).tolist()
    assert index == 0
    assert "gone.png" in error
    assert size == (0, 0)


def test_opening_and_wrapping_a_large_probe_reads_no_image(tmp_path, monkeypatch):
    opened = []
    real_open = probes.base.Image.open
    monkeypatch.setattr(probes.base.Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    probe = probe_of(tmp_path, [f"img/{i:04d}.png" for i in range(1000)], images=False)
    dataset = ProbeDataset(probe, (8, 8))
    assert len(dataset) == 1000
    assert opened == []


def test_image_size_is_that_of_the_first_readable_image(tmp_path):
    probe = probe_of(tmp_path, ["gone.png", "b.png"], images=False)
    write_image(tmp_path / "b.png", size=(5, 7))  # W=5, H=7
    assert probe_image_size(probe) == (7, 5)


def test_image_size_of_probe_with_no_readable_image_is_refused(tmp_path):
    probe = probe_of(tmp_path, ["gone.png"], images=False)
    with pytest.raises(ProbeError, match="none of the 1 images"):
        probe_image_size(probe)
