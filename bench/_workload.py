"""Shared by the bench scripts that time torch work: the seeded random-init ResNet-18 and images they time,
and waiting for the device before a clock is read."""
from __future__ import annotations

import torch
import torchvision


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a CUDA device runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_resnet(n: int, size: int, device: torch.device, threads: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """ResNet-18 (random init, seed 0, 2 classes, eval mode) on ``device``, ``n`` uniform random images of
    ``size`` x ``size`` (seed 1), and the model's own predictions for them; ``threads``: torch CPU threads
    (0 leaves torch's default)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2).eval().to(device)
    images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        labels = model(images).argmax(1)
    return model, images, labels
