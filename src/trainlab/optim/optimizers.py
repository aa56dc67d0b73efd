"""Optimizer factories over PyTorch's implementations (foreach kernels where PyTorch has them)."""
from __future__ import annotations

import torch


def sgd(params, lr: float, weight_decay: float, momentum: float = 0.9, dampening: float = 0.0,
        nesterov: bool = False) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                           weight_decay=weight_decay, foreach=True)


def adam(params, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
         amsgrad: bool = False) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                            foreach=True)


def adamw(params, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          amsgrad: bool = False) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                             foreach=True)
