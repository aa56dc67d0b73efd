"""Pruning a trained run (`trainlab compress RUN --method prune`).

Unstructured: magnitude pruning of the weights of every Linear and Conv layer (biases and norms
untouched) with torch.nn.utils.prune, global (one threshold over all of them) or per layer, one-shot
or iterative on the cubic schedule of Zhu & Gupta 2017 ("To prune, or not to prune",
arXiv:1710.01878), each round followed by fine-tuning. The masks are applied and removed
(`prune.remove`) at once, so the model keeps plain `weight` tensors (the checkpoint and `load_run`
see the recipe's own model); `HoldMask` multiplies them back after every optimizer step of the
fine-tuning. The zeros are stored compactly by the checkpoint layer (train/checkpoint.py).

Structured (`structured=True`): the hidden units of an `mlp` and the channels of a `convnet`, ranked
by the L1 or L2 norm of their weights (Li et al. 2017, "Pruning Filters for Efficient ConvNets",
arXiv:1608.08710), are removed physically: the recipe's model with the new widths is built and the
kept rows (and the next layer's matching inputs) are copied into it, so parameters, FLOPs and
latency drop. torch.nn.utils.prune.ln_structured only zeroes them.
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import RecipeError
from ..events import Callback

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
STRUCTURED = {"mlp": "hidden units", "convnet": "channels"}


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") for every Linear and Conv layer, in module order."""
    return [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]


def sparsity(model: nn.Module) -> float:
    """The share of the prunable weights that are exactly zero."""
    ws = [m.weight for m, _ in prunable(model)]
    return sum(int((w == 0).sum()) for w in ws) / max(1, sum(w.numel() for w in ws))


def schedule(target: float, steps: int) -> list[float]:
    """The sparsity after each of `steps` rounds: s_k = target * (1 - (1 - k/steps)^3) (Zhu & Gupta
    2017): large cuts first, while many small weights remain, smaller ones near the target."""
    return [target * (1 - (1 - k / steps) ** 3) for k in range(1, steps + 1)]


@torch.no_grad()
def prune_unstructured(model: nn.Module, amount: float, scope: str = "global") -> nn.Module:
    """Zero the `amount` share of smallest-magnitude prunable weights, over all layers together
    (`scope: global`, round(amount * total) weights) or in each layer (`layer`); in place, leaving
    plain `weight` tensors. Weights already zero are the smallest, so a later round with a larger
    amount keeps them zero."""
    params = prunable(model)
    if scope == "global":
        total = sum(m.weight.numel() for m, _ in params)
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=round(amount * total))
    elif scope == "layer":
        for m, name in params:
            prune.l1_unstructured(m, name, amount=round(amount * m.weight.numel()))
    else:
        raise RecipeError(f"compress.scope: expected 'global' or 'layer', got {scope!r}")
    for m, name in params:
        prune.remove(m, name)
    return model


class HoldMask(Callback):
    """Keeps pruned weights at zero while fine-tuning: the masks are the prunable weights' non-zero
    entries at the start of training, multiplied back by an optimizer step post-hook after every
    step (the optimizer moves them otherwise; the trainer's lean fused step steps aside for a
    hooked optimizer), so every checkpoint holds plain, pruned `weight` tensors."""

    def __init__(self) -> None:
        self.masks: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._hook = None

    def on_fit_start(self, trainer) -> None:
        self.masks = [(m.weight, m.weight != 0) for m, _ in prunable(trainer.model)]
        self._hook = trainer.optimizer.register_step_post_hook(lambda *_: self.apply())

    @torch.no_grad()
    def apply(self) -> None:
        for w, mask in self.masks:
            w.mul_(mask)

    def on_fit_end(self, trainer) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


# --- structured pruning: physical removal --------------------------------------------------------
def check_structured(recipe) -> None:
    """RecipeError unless the run's model is one structured pruning can cut."""
    name = recipe.model.name
    if name not in STRUCTURED:
        raise RecipeError(f"compress.structured: model {name!r} cannot be cut; structured pruning supports "
                          "mlp (hidden units) and convnet (channels); use unstructured pruning (--sparsity)")
    if name == "mlp" and getattr(recipe.model, "norm", "none") == "layer":
        raise RecipeError("compress.structured: mlp with norm: layer cannot be cut (removing units changes the "
                          "layer norm's statistics); structured pruning supports mlp with norm none or batch")
    if name == "mlp" and not recipe.model.widths:
        raise RecipeError("compress.structured: the mlp has no hidden layer to cut")


def _unit_norms(m: nn.Module, norm: str) -> torch.Tensor:
    w = m.weight.detach().flatten(1)
    return w.abs().sum(1) if norm == "l1" else w.pow(2).sum(1).sqrt()


def kept_units(model: nn.Module, amount: float, norm: str = "l1") -> list[torch.Tensor]:
    """For each prunable layer but the last (the head keeps its outputs): the sorted indices of the
    units/channels kept, the round(amount * width) of smallest norm removed (at least one kept)."""
    if norm not in ("l1", "l2"):
        raise RecipeError(f"compress.norm: expected 'l1' or 'l2', got {norm!r}")
    keeps = []
    for m, _ in prunable(model)[:-1]:
        width = m.weight.shape[0]
        n = max(1, width - round(amount * width))
        keeps.append(torch.topk(_unit_norms(m, norm), n).indices.sort().values)
    return keeps


def cut_model_section(model_section: dict[str, Any], keeps: list[torch.Tensor], name: str,
                      blocks: int = 1) -> dict[str, Any]:
    """The recipe's model section with the widths the kept units give."""
    widths = [len(k) for k in keeps]
    if name == "convnet":
        widths = widths[::blocks]  # every conv of a stage has the stage's width, so the same count kept
    return {**model_section, "widths": widths}


@torch.no_grad()
def copy_kept(old: nn.Module, new: nn.Module, keeps: list[torch.Tensor]) -> nn.Module:
    """Copy the kept rows of `old`'s layers into the smaller `new` (the same layout, the new widths):
    each Linear/Conv its kept outputs and the previous layer's kept inputs, each norm layer the
    kept channels; a Linear after a flattened feature map takes every position of each kept
    channel. Raises RecipeError if the two do not line up."""
    olds = [m for m in old.modules() if not list(m.children())]
    news = [m for m in new.modules() if not list(m.children())]
    if len(olds) != len(news) or any(type(a) is not type(b) for a, b in zip(olds, news)):
        raise RecipeError("compress.structured: the smaller model's layers do not match the run's")
    inputs: torch.Tensor | None = None  # the kept channels of the current activation
    channels = 0                        # how many it had before the cut
    i = 0
    for a, b in zip(olds, news):
        if isinstance(a, PRUNABLE):
            w = a.weight
            if inputs is not None:
                if isinstance(a, nn.Linear) and w.shape[1] != channels:
                    per = w.shape[1] // channels  # positions per channel of a flattened (C, H, W) map
                    cols = (inputs[:, None] * per + torch.arange(per)).reshape(-1)
                else:
                    cols = inputs
                w = w[:, cols]
            rows = keeps[i] if i < len(keeps) else torch.arange(w.shape[0])
            b.weight.copy_(w[rows])
            if a.bias is not None:
                b.bias.copy_(a.bias[rows])
            inputs, channels = rows, a.weight.shape[0]
            i += 1
        elif isinstance(a, nn.modules.batchnorm._BatchNorm):
            for key in ("weight", "bias", "running_mean", "running_var"):
                if getattr(a, key) is not None:
                    getattr(b, key).copy_(getattr(a, key)[inputs])
            b.num_batches_tracked.copy_(a.num_batches_tracked)
        else:
            for (ka, ta), (kb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
                if ta.shape != tb.shape:
                    raise RecipeError(f"compress.structured: cannot cut a {type(a).__name__} layer")
                tb.copy_(ta)
    return new


def prune_structured(parent, amount: float, norm: str = "l1") -> tuple[nn.Module, dict[str, Any]]:
    """(the smaller model with the parent's kept weights, the recipe's new model section) for a
    loaded run `parent` (an mlp or a convnet; see `check_structured`)."""
    from ..build import build_model_for
    from ..recipe import load_recipe, read_yaml

    check_structured(parent.recipe)
    model = copy.deepcopy(parent.model).cpu().float()
    keeps = kept_units(model, amount, norm)
    raw = read_yaml(Path(parent.path) / "recipe.yaml")
    section = cut_model_section(raw["model"], keeps, parent.recipe.model.name,
                                int(getattr(parent.recipe.model, "blocks", 1)))
    raw["model"] = section
    small, _ = build_model_for(load_recipe(raw), copy.deepcopy(parent.info), torch.device("cpu"))
    return copy_kept(model, small, keeps), section


# --- the method ------------------------------------------------------------------------------------
def validate(options: dict[str, Any]) -> None:
    """RecipeError naming the option for anything out of range (checked before anything is written)."""
    if options.get("structured"):
        amount = options.get("amount")
        if amount is None or not 0 < float(amount) < 1:
            raise RecipeError(f"--amount: the share of units/channels to remove must be in (0, 1), got {amount}")
        if options.get("norm", "l1") not in ("l1", "l2"):
            raise RecipeError(f"--norm: expected l1 or l2, got {options.get('norm')!r}")
    else:
        s = options.get("sparsity")
        if s is None or not 0 < float(s) < 1:
            raise RecipeError(f"--sparsity: the target sparsity must be in (0, 1), got {s}")
        if options.get("scope", "global") not in ("global", "layer"):
            raise RecipeError(f"--scope: expected global or layer, got {options.get('scope')!r}")
    if int(options.get("steps", 1)) < 1:
        raise RecipeError(f"--steps: at least 1 round, got {options.get('steps')}")
    if int(options.get("epochs", 0)) < 0:
        raise RecipeError(f"--epochs: 0 or more, got {options.get('epochs')}")


def prune_run(parent, options: dict[str, Any], run_dir: str | Path | None = None, progress: bool = True):
    """Prune the loaded run `parent` (api.LoadedRun) into a new child run directory and return its
    api.Run. `options`: structured (bool), sparsity and scope (global | layer) or amount and norm
    (l1 | l2), steps (rounds, unstructured only), epochs (fine-tuning per round, 0 = none),
    lr_scale. Raises RecipeError for bad options or a model structured pruning cannot cut, before
    anything is written."""
    from .child import child_recipe, fine_tune, record

    validate(options)
    epochs = int(options.get("epochs", 2))
    lr_scale = float(options.get("lr_scale", 1.0))
    recorded = {k: v for k, v in options.items() if v is not None}
    if options.get("structured"):
        model, section = prune_structured(parent, float(options["amount"]), options.get("norm", "l1"))
        rounds = [None]
    else:
        model, section = copy.deepcopy(parent.model).cpu(), None
        rounds = schedule(float(options["sparsity"]), int(options.get("steps", 1)))
    recipe = child_recipe(parent, "prune", recorded, model=section, epochs=max(epochs, 1), lr_scale=lr_scale)
    with tempfile.TemporaryDirectory(prefix="trainlab-prune-") as tmp:
        for k, target in enumerate(rounds):
            if target is not None:
                prune_unstructured(model, target, options.get("scope", "global"))
            last = k == len(rounds) - 1
            if epochs == 0:
                if last:
                    return record(recipe, model, run_dir=run_dir)
                continue
            where = run_dir if last else Path(tmp) / f"round-{k}"
            hold = [] if options.get("structured") else [HoldMask()]  # a cut model has no zeros to hold
            run = fine_tune(recipe, model, run_dir=where, callbacks=hold, progress=progress and last)
            if not last:  # the next round starts from this one's fine-tuned weights
                from ..api import load_run

                model = load_run(run.path, "last", device="cpu").model
    return run
