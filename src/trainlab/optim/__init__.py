"""Optimizers and LR schedules by registry name, the parameter-group policy, and the small pieces
the trainer puts around an optimizer step (closure for L-BFGS, schedule-free eval/train switch)."""
from __future__ import annotations

import torch

from ..registry import Registry
from . import optimizers, schedules
from .groups import param_groups
from .optimizers import OptimizerCapabilities, optimizer_capabilities

OPTIMIZERS = Registry("optimizer", "optimizers", context=("params", "lr", "weight_decay", "model"))
# metadata: optimizers.OptimizerCapabilities (closure, schedule_free, fused_kernel, momentum)
OPTIMIZERS.add("sgd", optimizers.sgd, "stochastic gradient descent with momentum / Nesterov (torch.optim.SGD)",
               fused_kernel="sgd", momentum="momentum")
OPTIMIZERS.add("adam", optimizers.adam, "Adam, coupled L2 weight decay (torch.optim.Adam)",
               fused_kernel="adam", momentum="betas")
OPTIMIZERS.add("adamw", optimizers.adamw, "Adam with decoupled weight decay (torch.optim.AdamW)",
               fused_kernel="adamw", momentum="betas")
OPTIMIZERS.add("nadam", optimizers.nadam, "Adam with Nesterov momentum (torch.optim.NAdam)", momentum="betas")
OPTIMIZERS.add("radam", optimizers.radam, "rectified Adam, no warm-up needed (torch.optim.RAdam)", momentum="betas")
OPTIMIZERS.add("adamax", optimizers.adamax, "Adam with the infinity norm (torch.optim.Adamax)", momentum="betas")
OPTIMIZERS.add("rmsprop", optimizers.rmsprop, "RMSprop, optionally centered and with momentum (torch.optim.RMSprop)",
               momentum="momentum")
OPTIMIZERS.add("adagrad", optimizers.adagrad, "per-coordinate LR from summed squared gradients (torch.optim.Adagrad)")
OPTIMIZERS.add("adadelta", optimizers.adadelta, "Adagrad with a decaying window of gradients (torch.optim.Adadelta)")
OPTIMIZERS.add("adafactor", optimizers.adafactor, "memory-light Adam with factored second moments "
               "(torch.optim.Adafactor)")
OPTIMIZERS.add("lbfgs", optimizers.lbfgs, "L-BFGS quasi-Newton with a closure and strong-Wolfe line search "
               "(torch.optim.LBFGS)", aliases=("l-bfgs",), closure=True)
OPTIMIZERS.add("muon", optimizers.muon, "Muon on hidden weight matrices, AdamW on the rest (torch.optim.Muon)")
OPTIMIZERS.add("lion", optimizers.lion, "sign-momentum optimizer found by program search (lion-pytorch)",
               momentum="betas")
OPTIMIZERS.add("schedule_free_adamw", optimizers.schedule_free_adamw,
               "schedule-free AdamW; evaluates the averaged weights (schedulefree)",
               aliases=("schedule-free-adamw", "sf_adamw"), schedule_free=True, momentum="betas")

SCHEDULES = Registry("schedule", "schedules", context=("optimizer", "total_steps", "steps_per_epoch"))
SCHEDULES.add("constant", schedules.constant, "the base learning rate throughout")
SCHEDULES.add("step", schedules.step, "× gamma every step_size epochs (torch StepLR)")
SCHEDULES.add("multistep", schedules.multistep, "× gamma at each milestone epoch (torch MultiStepLR)")
SCHEDULES.add("exponential", schedules.exponential, "× gamma per epoch, smoothly per step (torch ExponentialLR)")
SCHEDULES.add("cosine", schedules.cosine, "cosine decay from the base LR to min_ratio × base over the run")
SCHEDULES.add("warmup_cosine", schedules.warmup_cosine, "linear warm-up (default 5% of the run), then cosine "
              "to a floor of min_ratio × base")
SCHEDULES.add("linear", schedules.linear, "linear decay from the base LR to end_ratio × base (torch LinearLR)")
SCHEDULES.add("one_cycle", schedules.one_cycle, "one-cycle: warm up to the base LR, then anneal (torch OneCycleLR)",
              aliases=("onecycle",))
SCHEDULES.add("reduce_on_plateau", schedules.reduce_on_plateau, "× factor when a validation metric stops "
              "improving, checked each epoch (torch ReduceLROnPlateau)", aliases=("plateau",))

# `schedule.warmup` when the recipe leaves it unset
WARMUP_DEFAULTS = {"warmup_cosine": 0.05}

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "OptimizerCapabilities",
    "build_optimizer",
    "build_schedule",
    "needs_closure",
    "optimizer_capabilities",
    "param_groups",
    "set_train_mode",
]


def build_optimizer(cfg, model):
    """The recipe's optimizer over the model's parameter groups (see `param_groups`)."""
    groups = param_groups(model, cfg.lr, cfg.weight_decay, cfg.decay_bias_and_norm, cfg.lr_mult)
    entry = OPTIMIZERS.get(cfg.name, "optim.name")
    optimizer = OPTIMIZERS.build(entry.name, cfg.options(), "optim", params=groups, lr=cfg.lr,
                                 weight_decay=cfg.weight_decay, model=model)
    optimizer.trainlab_optimizer = entry.name  # the way back to its entry: optimizer_capabilities()
    return optimizer


def build_schedule(cfg, optimizer, total_steps: int, steps_per_epoch: int | None = None):
    """An LR schedule stepped once per optimizer step, `total_steps` in all, behind the recipe's
    warm-up if it asks for one. Schedules with options in epochs (step, multistep, exponential)
    need `steps_per_epoch`: without it their factory is called without it, and fails loudly."""
    entry = SCHEDULES.get(cfg.name, "schedule.name")
    warmup = getattr(cfg, "warmup", None)
    warm = schedules.warmup_steps(warmup if warmup is not None else WARMUP_DEFAULTS.get(entry.name), total_steps)
    per_epoch = {"steps_per_epoch": steps_per_epoch} if steps_per_epoch else {}
    inner = SCHEDULES.build(cfg.name, cfg.options(), "schedule", optimizer=optimizer, total_steps=total_steps - warm,
                            **per_epoch)
    return schedules.Warmup(optimizer, inner, warm) if warm else inner


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """L-BFGS re-evaluates the loss several times per step: the trainer hands it a closure."""
    return optimizer_capabilities(optimizer).closure


def set_train_mode(optimizer: torch.optim.Optimizer, train: bool) -> None:
    """Schedule-free optimizers train at one point and evaluate at the average of the iterates:
    switch the weights (`optimizer.train()` / `optimizer.eval()`); other optimizers have one point."""
    if optimizer_capabilities(optimizer).schedule_free:
        optimizer.train() if train else optimizer.eval()
