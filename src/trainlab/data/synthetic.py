"""Synthetic data sets with known answers, for tests and demos."""
from __future__ import annotations

import torch

from .bundle import SourceData, Split


def linear(seed: int, n: int = 2000, slope: float = 2.0, intercept: float = 0.0, noise: float = 0.1) -> SourceData:
    """y = slope·x + intercept + N(0, noise²), x ~ U(-1, 1): a regression whose answer is known."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g) * 2 - 1
    y = slope * x + intercept + noise * torch.randn(n, 1, generator=g)
    return SourceData(train=Split(x, y), test=None, task="regression", kind="vector")
