"""Small example models for the 8x8 digits (64 inputs, 10 classes), used by tests, bench and demo.

Plain ``nn.Sequential`` stacks: structured pruning walks a Sequential to find which layer feeds
which, so these are the shapes it handles (Linear/Conv2d chains with BatchNorm, pooling, Flatten).
Factories take keyword widths so a distillation student is the same family, only narrower.
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
