"""Losses by registry name. Each factory returns a callable (outputs, targets) -> scalar loss."""
from __future__ import annotations

import torch
from torch import nn

from .errors import RecipeError
from .registry import Registry

LOSSES = Registry("loss", "losses", context=("info",))


class _CrossEntropy(nn.CrossEntropyLoss):
    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.ndim == 3 and y.ndim == 2:  # per-position logits (B, T, C), targets (B, T): language models
            out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        return super().forward(out, y)


def cross_entropy(label_smoothing: float = 0.0) -> nn.Module:
    """Softmax cross-entropy on logits; targets are class indices or class probabilities (soft);
    sequence outputs (B, T, C) with targets (B, T) are scored per position."""
    return _CrossEntropy(label_smoothing=label_smoothing)


class _MSE(nn.Module):
    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(out, y.view_as(out).to(out.dtype))


def mse() -> nn.Module:
    """Mean squared error (regression)."""
    return _MSE()


# `tasks`: the data a loss is for; a recipe that pairs a loss with other data is refused before training
LOSSES.add("cross_entropy", cross_entropy, "softmax cross-entropy with optional label smoothing", aliases=("ce",),
           tasks=("classification",))
LOSSES.add("mse", mse, "mean squared error for regression", aliases=("l2",), tasks=("regression",))


def build_loss(cfg, info) -> nn.Module:
    name = cfg.name
    if name == "auto":
        name = "cross_entropy" if info.task == "classification" else "mse"
    tasks = LOSSES.get(name, "loss.name").meta.get("tasks")
    if tasks and info.task not in tasks:
        fits = [e.name for e in LOSSES.entries() if info.task in e.meta.get("tasks", (info.task,))]
        raise RecipeError(f"loss.name: {name!r} is a loss for {' or '.join(tasks)}, but the data is "
                          f"{info.task}; use auto or one of: {', '.join(fits)}")
    return LOSSES.build(name, cfg.options(), "loss", info=info)
