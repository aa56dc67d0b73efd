"""Losses by registry name. Each factory returns a callable (outputs, targets) -> scalar loss."""
from __future__ import annotations

import torch
from torch import nn

from .registry import Registry

LOSSES = Registry("loss", "losses", context=("info",))


def cross_entropy(label_smoothing: float = 0.0) -> nn.Module:
    """Softmax cross-entropy on logits; targets are class indices or class probabilities (soft)."""
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


class _MSE(nn.Module):
    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(out, y.view_as(out).to(out.dtype))


def mse() -> nn.Module:
    """Mean squared error (regression)."""
    return _MSE()


LOSSES.add("cross_entropy", cross_entropy, "softmax cross-entropy with optional label smoothing", aliases=("ce",))
LOSSES.add("mse", mse, "mean squared error for regression", aliases=("l2",))


def build_loss(cfg, info) -> nn.Module:
    name = cfg.name
    if name == "auto":
        name = "cross_entropy" if info.task == "classification" else "mse"
    return LOSSES.build(name, cfg.options(), "loss", info=info)
