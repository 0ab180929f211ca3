"""Tiny models for the loading tests: importable so that ``--arch model_fixtures:make_tiny`` works."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class TinyCNN(nn.Module):
    """Two convolutions and a linear head on 16 x 16 RGB input (the head fixes the input size)."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(x.flatten(1))


class NaNModel(nn.Module):
    """A model whose logits are NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3))) * float("nan")


def make_tiny(num_classes: int = 3) -> TinyCNN:
    """Factory for ``--arch``: a seeded TinyCNN."""
    torch.manual_seed(0)
    return TinyCNN(num_classes).eval()


class Touch:
    """Unpickling this creates ``path``: a stand-in for a malicious pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (Path(self.path),))


class ProjHead(nn.Module):
    """A projection then a head: sorted keys put ``proj.weight`` after the real head ``head.weight``."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 6)
        self.head = nn.Linear(6, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.proj(x.mean(dim=(2, 3)))))
