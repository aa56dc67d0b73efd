"""LR schedules, stepped once per optimizer step; reduce_on_plateau also sees each epoch's metrics.

Every schedule scales each parameter group's own LR, so per-module multipliers (`optim.lr_mult`)
keep their ratio. Options given in epochs (step_size, milestones, exponential's gamma) are turned
into optimizer steps here, so the trainer steps every schedule the same way. `Warmup` puts a
linear warm-up in front of any of them (`schedule.warmup`).
"""
from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch.optim.lr_scheduler import (
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    StepLR,
)

from ..errors import RecipeError
from .optimizers import optimizer_capabilities


def constant(optimizer) -> LRScheduler:
    """The base LR throughout."""
    return LambdaLR(optimizer, lambda step: 1.0)


def step(optimizer, steps_per_epoch: int, step_size: float, gamma: float = 0.1) -> LRScheduler:
    """Multiply the LR by `gamma` every `step_size` epochs (fractions allowed)."""
    return StepLR(optimizer, step_size=max(1, round(step_size * steps_per_epoch)), gamma=gamma)


def multistep(optimizer, steps_per_epoch: int, milestones: list[float], gamma: float = 0.1) -> LRScheduler:
    """Multiply the LR by `gamma` at each milestone (in epochs, fractions allowed)."""
    return MultiStepLR(optimizer, milestones=sorted(max(1, round(m * steps_per_epoch)) for m in milestones),
                       gamma=gamma)


def exponential(optimizer, steps_per_epoch: int, gamma: float = 0.9) -> LRScheduler:
    """Multiply the LR by `gamma` per epoch, smoothly (gamma^(1/steps_per_epoch) per step)."""
    return ExponentialLR(optimizer, gamma=gamma ** (1.0 / max(1, steps_per_epoch)))


def cosine(optimizer, total_steps: int, min_ratio: float = 0.0) -> LRScheduler:
    """Loshchilov & Hutter, "SGDR" (2016): cosine from the base LR to `min_ratio` × base at the end."""
    # a factor, not CosineAnnealingLR: its eta_min is one absolute LR for every group
    def f(step: int) -> float:
        t = min(step, total_steps) / max(1, total_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return LambdaLR(optimizer, f)


def warmup_cosine(optimizer, total_steps: int, min_ratio: float = 0.1) -> LRScheduler:
    """Linear warm-up (schedule.warmup, default 0.05 of the run), then cosine down to `min_ratio` × base."""
    return cosine(optimizer, total_steps, min_ratio)


def linear(optimizer, total_steps: int, end_ratio: float = 0.0) -> LRScheduler:
    """Linear decay from the base LR to `end_ratio` × base at the end."""
    return LinearLR(optimizer, start_factor=1.0, end_factor=end_ratio, total_iters=max(1, total_steps))


def one_cycle(optimizer, total_steps: int, pct_start: float = 0.25, div_factor: float = 25.0,
              final_div_factor: float = 1e4, cycle_momentum: bool = True) -> LRScheduler:
    """Smith & Topin, "Super-Convergence" (2017): the base LR is the peak.

    Momentum (or Adam's beta1) cycles only where every group has it; never for schedule-free
    optimizers, whose train/eval switch interpolates the weights with beta1.
    """
    caps, groups = optimizer_capabilities(optimizer), optimizer.param_groups
    has_momentum = (caps.momentum == "betas" and all("betas" in g for g in groups)) or (
        caps.momentum == "momentum" and all(g.get("momentum", 0) > 0 for g in groups))
    total_steps = max(1, total_steps)
    if abs(pct_start * total_steps - 1.0) < 1e-9:  # a warm-up of exactly one step: torch's OneCycleLR
        pct_start = (1.0 + 1e-6) / total_steps      # divides by its zero length; a hair longer is the same
    return OneCycleLR(optimizer, max_lr=[g["lr"] for g in groups], total_steps=total_steps,
                      pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor,
                      cycle_momentum=cycle_momentum and has_momentum and not caps.schedule_free)


class PlateauSchedule(ReduceLROnPlateau):
    """torch's ReduceLROnPlateau fed the monitored metric once per epoch by `epoch_end`; the
    trainer's per-step `step()` leaves the LR alone."""

    def __init__(self, optimizer, monitor: str, **options: Any):
        super().__init__(optimizer, **options)
        self.monitor = monitor

    def step(self, metrics=None, epoch=None) -> None:  # type: ignore[override]
        if metrics is not None:
            super().step(metrics)

    def epoch_end(self, logs: dict[str, Any]) -> None:
        if self.monitor not in logs:
            raise RecipeError(f"schedule.monitor: {self.monitor!r} is not logged; "
                              f"logged: {', '.join(sorted(k for k in logs if '.' in k))}")
        self.step(logs[self.monitor])


def reduce_on_plateau(optimizer, monitor: str = "val.loss", mode: Literal["auto", "min", "max"] = "auto",
                      factor: float = 0.1, patience: int = 2, threshold: float = 1e-4, cooldown: int = 0,
                      min_lr: float = 0.0) -> PlateauSchedule:
    """Multiply the LR by `factor` when `monitor` has not improved for `patience` epochs."""
    from ..metrics import higher_is_better

    if mode == "auto":
        mode = "max" if higher_is_better(monitor) else "min"
    return PlateauSchedule(optimizer, monitor, mode=mode, factor=factor, patience=patience, threshold=threshold,
                           cooldown=cooldown, min_lr=min_lr)


class Warmup:
    """Linear warm-up over the first `steps` optimizer steps, then the wrapped schedule, unchanged,
    over the remaining steps (it was built for total − steps). During warm-up each group's LR is
    the wrapped schedule's starting LR × (k+1)/(steps+1) at step k (Goyal et al. 2017, §2.2)."""

    def __init__(self, optimizer: torch.optim.Optimizer, inner, steps: int):
        self.optimizer, self.inner, self.steps = optimizer, inner, steps
        self.count = 0
        self.target = [g["lr"] for g in optimizer.param_groups]  # the wrapped schedule's LR
        self._apply()

    def _apply(self) -> None:
        f = min(1.0, (self.count + 1) / (self.steps + 1))
        for g, lr in zip(self.optimizer.param_groups, self.target):
            g["lr"] = lr * f

    def step(self) -> None:
        self.count += 1
        if self.count <= self.steps:
            self._apply()
        else:
            self.inner.step()

    def epoch_end(self, logs: dict[str, Any]) -> None:
        if not isinstance(self.inner, PlateauSchedule):
            return
        if self.count < self.steps:  # let the plateau rule see (and change) the un-warmed LR
            for g, lr in zip(self.optimizer.param_groups, self.target):
                g["lr"] = lr
            self.inner.epoch_end(logs)
            self.target = [g["lr"] for g in self.optimizer.param_groups]
            self._apply()
        else:
            self.inner.epoch_end(logs)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "steps": self.steps, "target": list(self.target),
                "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.steps, self.target = state["count"], state["steps"], list(state["target"])
        self.inner.load_state_dict(state["inner"])


def warmup_steps(value: float | None, total_steps: int) -> int:
    """`schedule.warmup` in optimizer steps: a share of the run below 1, or a whole number of steps."""
    if not value:
        return 0
    if value < 1:
        steps = round(value * total_steps)
    elif float(value).is_integer():
        steps = int(value)
    else:
        raise RecipeError(f"schedule.warmup: expected a share of the run below 1 (e.g. 0.05) or a whole "
                          f"number of steps, got {value!r}")
    if steps >= total_steps:
        raise RecipeError(f"schedule.warmup: {steps} warm-up steps leave nothing of the run's "
                          f"{total_steps} optimizer steps")
    return steps


def epoch_end(schedule, logs: dict[str, Any]) -> None:
    """Give a metric-driven schedule (reduce_on_plateau, bare or warmed up) the epoch's metrics."""
    if isinstance(schedule, (PlateauSchedule, Warmup)):
        schedule.epoch_end(logs)


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The LR the schedule sets now, without the first group's module multiplier."""
    g = optimizer.param_groups[0]
    return float(g["lr"]) / g.get("lr_mult", 1.0)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
