"""The build stage: a recipe and its data's info -> the components a run trains with.

Everything that needs a model goes through here: the Trainer (which only loops), `evaluate`,
`load_run`, `summary`, `lr-find`, `compare` and `tune`. Building draws from the global RNGs in a
fixed order (data, then model initialization, then the loader's and augmentation's own seeds), so
the same recipe builds the same weights whichever command builds it.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .data import Augment, DataBundle, DataInfo, build_augment, build_data, build_loader
from .errors import RecipeError
from .losses import build_loss, model_outputs
from .metrics import check_metric_names
from .models import build_model
from .models.quantized import LINEAR_SCHEMES, quantize_linear
from .optim import SCHEDULES, build_optimizer, build_schedule, needs_closure
from .perf import default_threads
from .recipe import Recipe


def resolve_device(name: str) -> torch.device:
    """`auto`: cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise RecipeError(f"train.device: {name!r} is not a device (auto, cpu, cuda, cuda:1, mps)") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def uses_channels_last(recipe: Recipe, info: DataInfo, model: torch.nn.Module) -> bool:
    """channels_last pays for 4-D image batches through conv layers only (see docs/performance.md)."""
    return recipe.train.channels_last and len(info.input_shape) == 3 and any(
        isinstance(m, torch.nn.Conv2d) for m in model.modules())


def build_model_for(recipe: Recipe, info: DataInfo, device: torch.device) -> tuple[torch.nn.Module, bool]:
    """The recipe's model for data described by `info`, initialized from the recipe's seed, on
    `device`; returns (model, whether it runs channels_last). A two-class task under a one-logit
    loss (`loss.name: bce`) gets a model with one output: `info.output_dim` becomes 1 (so the run's
    data/info.json says so, and `load_run` builds the same model)."""
    check_metric_names(recipe.train.metrics, info.task, info.num_classes)
    info.output_dim = model_outputs(recipe.loss, info)
    seed_everything(recipe.seed)  # model init does not depend on how much data loading drew
    model = build_model(recipe.model, info).to(device)
    compress = recipe.compress or {}
    if compress.get("method") == "quantize" and compress.get("scheme") in LINEAR_SCHEMES:
        quantize_linear(model, compress["scheme"])  # a quantized child run: its int8 weights load into this
    return place_model(recipe, info, model, device)


def place_model(recipe: Recipe, info: DataInfo, model: torch.nn.Module,
                device: torch.device) -> tuple[torch.nn.Module, bool]:
    """`model` on `device`, channels_last where the recipe and the model call for it."""
    model = model.to(device)
    channels_last = uses_channels_last(recipe, info, model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, channels_last


@dataclass
class Parts:
    """What a training run is made of; `Trainer(recipe, parts=...)` loops over these."""

    device: torch.device
    bundle: DataBundle
    model: torch.nn.Module
    channels_last: bool
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loader: Any                      # TensorLoader or StreamingLoader (data/loader.py)
    augment: Augment
    schedule: Any                    # an LR scheduler stepped once per optimizer step
    steps_per_epoch: int
    steps_schedule: bool             # False: a constant LR without warm-up, nothing to step
    closure_step: bool               # the optimizer re-evaluates the batch in a closure (L-BFGS)
    l1_params: list[torch.nn.Parameter] = field(default_factory=list)


def build_parts(recipe: Recipe, bundle: DataBundle | None = None,
                device: torch.device | None = None, model: torch.nn.Module | None = None) -> Parts:
    """Data (unless `bundle` is given), model, loss, optimizer and parameter groups, loader,
    augmentation and LR schedule for `recipe`. `model`: train this module (e.g. a pruned copy of a
    trained run's model, `trainlab compress`) instead of building the recipe's from its seed; it
    must take the data as the recipe's model would. Raises RecipeError / DataError on bad input."""
    device = device if device is not None else resolve_device(recipe.train.device)
    seed_everything(recipe.seed)
    bundle = bundle if bundle is not None else build_data(recipe.data, recipe.seed)
    info = bundle.info
    if model is None:
        model, channels_last = build_model_for(recipe, info, device)
    else:
        info.output_dim = model_outputs(recipe.loss, info)
        model, channels_last = place_model(recipe, info, model, device)
    loss_fn = build_loss(recipe.loss, info)
    optimizer = build_optimizer(recipe.optim, model)
    loader = build_loader(bundle.train, recipe.data, recipe.seed, device)  # fast path or streaming
    augment = build_augment(recipe.data.augment, info, device, recipe.seed)  # training batches only
    cfg = recipe.train
    steps_per_epoch = math.ceil(len(loader) / cfg.accumulate)
    schedule = build_schedule(recipe.schedule, optimizer, steps_per_epoch * cfg.epochs, steps_per_epoch)
    # a constant LR without warm-up has nothing to step: skip the scheduler's ~15 µs per step
    steps_schedule = not (SCHEDULES.get(recipe.schedule.name).name == "constant" and not recipe.schedule.warmup)
    closure_step = needs_closure(optimizer)
    if closure_step and cfg.accumulate > 1:
        raise RecipeError(f"train.accumulate: {recipe.optim.name} re-evaluates each batch in a closure; "
                          "use accumulate: 1 and a larger data.batch_size")
    return Parts(device, bundle, model, channels_last, loss_fn, optimizer, loader, augment, schedule,
                 steps_per_epoch, steps_schedule, closure_step, l1_params(recipe, model, optimizer))


def l1_params(recipe: Recipe, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list:
    """The parameters `optim.l1` penalizes: those the weight-decay policy decays (every weight
    matrix when the policy excludes all of them); none without an L1 penalty."""
    if recipe.optim.l1 <= 0:
        return []
    params = [p for g in optimizer.param_groups if g.get("weight_decay", 0) > 0 or
              recipe.optim.decay_bias_and_norm for p in g["params"]]
    return params or [p for p in model.parameters() if p.ndim > 1]


def set_threads(recipe: Recipe) -> int:
    """torch's CPU threads for this recipe (reported in env.json and the train summary)."""
    torch.set_num_threads(recipe.train.threads or default_threads())
    return torch.get_num_threads()


def scheduled_lrs(recipe: Recipe, records: list[dict[str, Any]]) -> list[tuple[int, float]] | None:
    """The learning rate after every optimizer step, replayed from the recipe's schedule on a
    one-layer stand-in model (a schedule is a function of the step), up to the last logged step.
    None when it cannot be replayed (e.g. a schedule driven by metrics) or disagrees with the LR
    the run logged; the LR plot then shows the logged points only."""
    import warnings

    # the trainer's epoch-end train records carry "time"; the every-log_every-steps ones do not
    train = [r for r in records if r.get("split") == "train" and "time" in r]
    if not train or not train[0].get("epoch"):
        return None
    per_epoch = train[0]["step"] // train[0]["epoch"]
    try:
        model = torch.nn.Linear(1, 1)
        opt = build_optimizer(recipe.optim, model)
        sched = build_schedule(recipe.schedule, opt, per_epoch * recipe.train.epochs)
        lrs = [(0, float(opt.param_groups[0]["lr"]))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for step in range(1, train[-1]["step"] + 1):
                opt.step()  # no gradients: changes nothing, but keeps the scheduler's order check quiet
                sched.step()
                lrs.append((step, float(opt.param_groups[0]["lr"])))
    except Exception:  # best effort: any schedule trainlab cannot replay falls back to the logged points
        return None
    logged = {r["step"]: r["lr"] for r in records if r.get("split") == "train" and "lr" in r}
    # the run logs the LR its step s used: the LR after s - 1 scheduler steps
    if any(abs(lrs[s - 1][1] - lr) > 1e-6 * max(abs(lr), 1e-12) for s, lr in logged.items() if 0 < s <= len(lrs)):
        return None
    return lrs
