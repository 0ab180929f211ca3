"""Tiny probe folders for the probe tests, written into ``tmp_path`` (images are a few pixels)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (8, 8), color: tuple[int, int, int] = (255, 0, 128)) -> Path:
    """A solid-colour RGB image of ``size`` (W, H); the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_garbage(path: Path) -> Path:
    """A file named like an image whose bytes are not one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a png\x00\x01\x02")
    return path


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def manifest_probe(
    folder: Path,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    images: bool = True,
) -> Path:
    """A manifest probe: ``manifest.csv`` with ``header``/``rows``; each row's ``path`` gets an 8x8 image."""
    write_csv(folder / "manifest.csv", header, rows)
    if images and "path" in header:
        col = list(header).index("path")
        for row in rows:
            write_image(folder / row[col])
    return folder


def celeba_probe(folder: Path, names: Sequence[str], rows: Sequence[Sequence[str]], *, image_dir: str = "img_align_celeba") -> Path:
    """A CelebA folder: ``list_attr_celeba.txt`` in the original padded layout, images in ``image_dir``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [str(len(rows)), " ".join(names) + " "]
    lines += [f"{row[0]} " + " ".join(f"{v:>2}" for v in row[1:]) for row in rows]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    for row in rows:
        write_image(folder / image_dir / row[0])
    return folder
