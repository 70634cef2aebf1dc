"""Small example models for the 8x8 digits (64 inputs, 10 classes), used by tests, bench and demo.

MLP and CNN stacks plus a residual CNN (skip connections couple channels across layers, which
dependency-aware structured pruning handles). Factories take keyword widths so a distillation
student is the same family, only narrower.
"""

from __future__ import annotations

from torch import nn


def digits_mlp(hidden1: int = 256, hidden2: int = 128) -> nn.Sequential:
    """64-256-128-10 MLP."""
    return nn.Sequential(
        nn.Linear(64, hidden1), nn.ReLU(),
        nn.Linear(hidden1, hidden2), nn.ReLU(),
        nn.Linear(hidden2, 10),
    )


def digits_mlp_small(hidden1: int = 64, hidden2: int = 32) -> nn.Sequential:
    """A distillation student: same family, a quarter of the width."""
    return digits_mlp(hidden1, hidden2)


def digits_cnn(channels1: int = 32, channels2: int = 64, hidden: int = 128) -> nn.Sequential:
    """Small CNN: flat 64-pixel input reshaped to 1x8x8, two conv blocks, one hidden dense layer."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, channels1, 3, padding=1), nn.BatchNorm2d(channels1), nn.ReLU(),
        nn.Conv2d(channels1, channels2, 3, padding=1), nn.BatchNorm2d(channels2), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels2 * 4 * 4, hidden), nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def digits_cnn_small(channels1: int = 8, channels2: int = 16, hidden: int = 32) -> nn.Sequential:
    return digits_cnn(channels1, channels2, hidden)


class _Residual(nn.Module):
    """conv-bn-relu-conv-bn plus the input (identity shortcut), then relu: the channels of the
    two convs' outputs and the block input are coupled, so pruning must remove them together."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):  # noqa: ANN001, ANN201
        out = nn.functional.relu(self.bn1(self.conv1(x)))
        return nn.functional.relu(self.bn2(self.conv2(out)) + x)


class DigitsResNet(nn.Module):
    """A small residual CNN (stem, two residual blocks, global pooling, classifier) for 8x8 digits.

    Not a Sequential: its skip connections are what dependency-aware structured pruning is for."""

    def __init__(self, channels: int = 32, blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                                  nn.ReLU())
        self.blocks = nn.Sequential(*[_Residual(channels) for _ in range(blocks)])
        self.head = nn.Linear(channels, 10)

    def forward(self, x):  # noqa: ANN001, ANN201
        x = self.blocks(self.stem(x.reshape(-1, 1, 8, 8)))
        return self.head(x.mean(dim=(2, 3)))


def digits_resnet(channels: int = 32, blocks: int = 2) -> DigitsResNet:
    return DigitsResNet(channels, blocks)
