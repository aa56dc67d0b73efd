"""Synthetic data sets with known answers, for tests and demos."""
from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from .bundle import SourceData, Split

Samples = Annotated[int, Field(ge=1)]
NonNegative = Annotated[float, Field(ge=0)]


def linear(seed: int, n: Samples = 2000, slope: float = 2.0, intercept: float = 0.0, noise: NonNegative = 0.1) -> SourceData:
    """y = slope·x + intercept + N(0, noise²), x ~ U(-1, 1): a regression whose answer is known."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g) * 2 - 1
    y = slope * x + intercept + noise * torch.randn(n, 1, generator=g)
    return SourceData(train=Split(x, y), test=None, task="regression", kind="vector")


def addition(seed: int, n: Samples = 1000, noise: NonNegative = 0.0, low: float = -1.0, high: float = 1.0) -> SourceData:
    """y = x1 + x2 (+ N(0, noise²)), x ~ U(low, high)²: a 2-input linear layer should learn
    weights [1, 1] and bias 0. Small and exact, for optimizer tests and demos."""
    g = torch.Generator().manual_seed(seed)
    x = low + (high - low) * torch.rand(n, 2, generator=g)
    y = x.sum(dim=1, keepdim=True) + noise * torch.randn(n, 1, generator=g)
    return SourceData(train=Split(x, y), test=None, task="regression", kind="vector")


def classification(seed: int, n: Samples = 1000, classes: Annotated[int, Field(ge=2)] = 3,
                   features: Annotated[int, Field(ge=1)] = 2, spread: Annotated[float, Field(gt=0)] = 1.0,
                   proportions: list[Annotated[float, Field(gt=0)]] | None = None) -> SourceData:
    """Gaussian blobs (scikit-learn's make_blobs): `classes` clusters of `features`-D points with
    standard deviation `spread`, centres drawn in [-10, 10]; well separated at the default spread.
    `proportions`: each class's share of the `n` samples (one per class, e.g. [0.9, 0.1] for an
    imbalanced set); default equal."""
    from sklearn.datasets import make_blobs

    from ..errors import RecipeError

    sizes: int | list[int] = n
    if proportions is not None:
        if len(proportions) != classes:
            raise RecipeError(f"data.proportions: expected {classes} shares (one per class), got {len(proportions)}")
        total = sum(proportions)
        sizes = [max(1, round(n * p / total)) for p in proportions]
    centers = classes if proportions is None else None  # make_blobs: per-class sizes imply the count
    x, y = make_blobs(n_samples=sizes, n_features=features, centers=centers, cluster_std=spread, random_state=seed)
    return SourceData(train=Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)),
                      test=None, task="classification", class_names=[str(c) for c in range(classes)],
                      kind="vector")


def multilabel(seed: int, n: Samples = 1000, labels: Annotated[int, Field(ge=1)] = 4,
               features: Annotated[int, Field(ge=1)] = 8, noise: Annotated[float, Field(ge=0, le=0.5)] = 0.05
               ) -> SourceData:
    """Multi-label data: x ~ N(0, I) in `features` dimensions, label l is on where a random linear
    function of x exceeds a threshold (labels rarer the higher l: from ~50% down to ~10% of samples),
    then each cell flipped with probability `noise`. A linear model can learn every label."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, labels, generator=g)
    w = w / w.norm(dim=0, keepdim=True)  # each score ~ N(0, 1)
    rate = torch.linspace(0.5, 0.1, labels) if labels > 1 else torch.tensor([0.5])
    threshold = torch.distributions.Normal(0.0, 1.0).icdf(1 - rate)
    y = (x @ w > threshold).float()
    flip = torch.rand(n, labels, generator=g) < noise
    y = torch.where(flip, 1 - y, y)
    return SourceData(train=Split(x, y), test=None, task="multilabel",
                      class_names=[f"label{i}" for i in range(labels)], kind="vector")
