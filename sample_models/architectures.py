"""Small CNN factories for 64x64 RGB inputs (any size works: global average pooling before the head).

The input is the *normalised* image (the auditor's wrapper applies the spec's mean/std); the output
is logits ``N x num_classes``.
"""
from __future__ import annotations

from torch import Tensor, nn

__all__ = ["small_cnn", "tiny_resnet"]


def _conv_bn(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def small_cnn(num_classes: int = 2, width: int = 16, hidden: int = 32) -> nn.Module:
    """Four conv-BN-ReLU stages (``width``, 2x, 4x, 4x channels) with max-pooling, global average pool,
    then a small MLP head (``hidden`` units; 0: a single linear layer).

    About 63k parameters at the defaults.
    """
    w = width
    head: list[nn.Module] = [nn.Linear(4 * w, num_classes)]
    if hidden:
        head = [nn.Linear(4 * w, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)]
    return nn.Sequential(
        *_conv_bn(3, w),
        nn.MaxPool2d(2),
        *_conv_bn(w, 2 * w),
        nn.MaxPool2d(2),
        *_conv_bn(2 * w, 4 * w),
        nn.MaxPool2d(2),
        *_conv_bn(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        *head,
    )


class _Block(nn.Module):
    """Basic residual block: two 3x3 conv-BN, identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.proj: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.proj(x))


class TinyResNet(nn.Module):
    """A stem and three residual stages (``width``, 2x, 4x channels), global pool, linear."""

    def __init__(self, num_classes: int = 2, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(*_conv_bn(3, w))
        self.layer1 = _Block(w, w, 2)
        self.layer2 = _Block(w, 2 * w, 2)
        self.layer3 = _Block(2 * w, 4 * w, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


def tiny_resnet(num_classes: int = 2, width: int = 16) -> nn.Module:
    """`TinyResNet`: about 75k parameters at ``width=16``."""
    return TinyResNet(num_classes, width)
