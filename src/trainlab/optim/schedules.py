"""LR schedules, stepped once per optimizer step."""
from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def constant(optimizer) -> LRScheduler:
    return LambdaLR(optimizer, lambda step: 1.0)


def cosine(optimizer, total_steps: int, min_ratio: float = 0.0) -> LRScheduler:
    """Cosine from the base LR down to `min_ratio` × base at the last step."""
    def f(step: int) -> float:
        t = min(step, total_steps) / max(1, total_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return LambdaLR(optimizer, f)


def one_cycle(optimizer, total_steps: int, pct_start: float = 0.25, div_factor: float = 25.0,
              final_div_factor: float = 1e4, cycle_momentum: bool = True) -> LRScheduler:
    """Smith & Topin, "Super-Convergence" (2017): the base LR is the peak."""
    has_momentum = any(g.get("momentum", 0) or "betas" in g for g in optimizer.param_groups)
    return OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max(1, total_steps),
                      pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor,
                      cycle_momentum=cycle_momentum and has_momentum)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
