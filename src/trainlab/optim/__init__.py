"""Optimizers and LR schedules by registry name, and the parameter-group policy."""
from __future__ import annotations

from ..registry import Registry
from . import optimizers, schedules
from .groups import param_groups

OPTIMIZERS = Registry("optimizer", "optimizers", context=("params", "lr", "weight_decay"))
OPTIMIZERS.add("sgd", optimizers.sgd, "stochastic gradient descent with momentum / Nesterov (torch.optim.SGD)")
OPTIMIZERS.add("adam", optimizers.adam, "Adam, coupled L2 weight decay (torch.optim.Adam)")
OPTIMIZERS.add("adamw", optimizers.adamw, "Adam with decoupled weight decay (torch.optim.AdamW)")

SCHEDULES = Registry("schedule", "schedules", context=("optimizer", "total_steps"))
SCHEDULES.add("constant", schedules.constant, "the base learning rate throughout")
SCHEDULES.add("cosine", schedules.cosine, "cosine decay from the base LR to min_ratio × base over the run")
SCHEDULES.add("one_cycle", schedules.one_cycle, "one-cycle: warm up to the base LR, then anneal (torch OneCycleLR)",
              aliases=("onecycle",))

__all__ = ["OPTIMIZERS", "SCHEDULES", "build_optimizer", "build_schedule", "param_groups"]


def build_optimizer(cfg, model):
    """The recipe's optimizer over the model's parameter groups (see `param_groups`)."""
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.decay_bias_and_norm, cfg.lr_mult)
    return OPTIMIZERS.build(cfg.name, cfg.options(), "optim", params=groups, lr=cfg.lr,
                            weight_decay=cfg.weight_decay)


def build_schedule(cfg, optimizer, total_steps: int):
    """An LR scheduler stepped once per optimizer step, `total_steps` in all."""
    return SCHEDULES.build(cfg.name, cfg.options(), "schedule", optimizer=optimizer, total_steps=total_steps)
