"""`trainlab summary`: what a recipe's (or a trained run's) model is and what it costs, measured on a batch.

Layer output shapes come from forward hooks; parameter counts from the module itself; FLOPs from
torch.utils.flop_counter.FlopCounterMode (a multiply-add is 2 FLOPs; matmuls, convolutions and
attention are counted, element-wise ops are not); optimizer state from one real optimizer step on
a copy of the model; activations from the tensors autograd saves for the backward pass.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils.flop_counter import FlopCounterMode

from .perf import countable

SAMPLE = 8  # samples measured; FLOPs per sample = count / SAMPLE (every counted op is linear in the batch)


def _shape(out: Any) -> list[int] | str:
    if isinstance(out, (tuple, list)) and out:  # e.g. an RNN's (output, state): show the output
        out = out[0]
    if isinstance(out, torch.Tensor):
        return list(out.shape)
    if isinstance(out, PackedSequence):
        return f"packed {tuple(out.data.shape)}"
    return type(out).__name__


def _layer_rows(model: nn.Module, x: torch.Tensor, max_depth: int) -> tuple[list[dict[str, Any]], int]:
    """One row per module down to `max_depth`, with its output shape and forward FLOPs per sample."""
    shapes: dict[str, Any] = {}
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda mod, inp, out: shapes.__setitem__(names[mod], _shape(out)))
             for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), countable(model), FlopCounterMode(display=False, depth=None) as fc:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    counts = fc.get_flop_counts()
    root = type(model).__name__

    def flops_of(name: str, m: nn.Module) -> int:
        if isinstance(m, (nn.ModuleList, nn.ModuleDict)):  # never called itself: its members are
            return sum(flops_of(f"{name}.{k}", c) for k, c in m.named_children())
        return sum(counts.get(f"{root}.{name}", {}).values())

    rows = []
    for name, m in model.named_modules():
        depth = name.count(".") + 1 if name else 0
        if not name or depth > max_depth:
            continue
        flops = flops_of(name, m)
        shape = shapes.get(name, "-")
        if isinstance(shape, list):
            shape = ["B", *shape[1:]]
        rows.append({"name": name, "type": type(m).__name__, "depth": depth, "output_shape": shape,
                     "params": sum(p.numel() for p in m.parameters()),
                     "flops_forward": flops // len(x)})
    return rows, fc.get_total_flops() // len(x)


def _train_step(recipe, model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int, int]:
    """FLOPs of one forward + backward on `x`, the optimizer's state bytes after a real step, and
    the bytes autograd saved for backward (parameters excluded), all on a copy of the model."""
    from .optim import build_optimizer

    model = copy.deepcopy(model).train()
    optimizer = build_optimizer(recipe.optim, model)
    params = {p.data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        if t.data_ptr() not in params:
            saved[t.data_ptr()] = t.numel() * t.element_size()
        return t

    with countable(model), FlopCounterMode(display=False) as fc:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = loss_fn(model(x), y)
        loss.backward()
    if callable(getattr(optimizer, "train", None)):  # schedule-free optimizers step only in train mode
        optimizer.train()
    optimizer.step()
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                if isinstance(t, torch.Tensor))
    return fc.get_total_flops(), state, sum(saved.values())


def summarize(recipe=None, max_depth: int = 2, bundle=None, run_dir=None, trust_code: bool = False) -> dict[str, Any]:
    """Everything `trainlab summary` shows, as plain data, for a recipe (`bundle`: its data, already
    built) or for a trained run directory (`run_dir`: its model from `load_run`, measured on a
    made-up batch of the right shape: the data is not read; `trust_code` as for `load_run`).
    Raises TrainlabError on bad input."""
    from .build import build_model_for, seed_everything
    from .data import build_data
    from .losses import build_loss

    cpu = torch.device("cpu")  # counting needs no accelerator and must not depend on one
    if run_dir is not None:
        from .api import load_run

        run = load_run(run_dir, "last", device=cpu, trust_code=trust_code)
        recipe, info, model, channels_last = run.recipe, run.info, run.model, run.channels_last
        x, y = info.example_batch(SAMPLE)
    else:
        recipe = recipe.model_copy(deep=True)
        recipe.train.device = "cpu"
        seed_everything(recipe.seed)
        bundle = bundle if bundle is not None else build_data(recipe.data, recipe.seed)
        info = bundle.info
        model, channels_last = build_model_for(recipe, info, cpu)
        n = min(SAMPLE, len(bundle.train))
        x, y = bundle.train.x[:n], bundle.train.y[:n]
    n = len(x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    rows, fwd = _layer_rows(model, x, max_depth)
    step_flops, opt_bytes, act_bytes = _train_step(recipe, model, build_loss(recipe.loss, info), x, y)
    params = list(model.parameters())  # shared (tied) parameters appear once
    trainable = [p for p in params if p.requires_grad]
    batch = recipe.data.batch_size
    return {
        "model": recipe.model.name, "input_shape": list(info.input_shape), "outputs": info.output_dim,
        "batch_size": batch, "layers": rows,
        "params_total": sum(p.numel() for p in params),
        "params_trainable": sum(p.numel() for p in trainable),
        "flops_forward_per_sample": fwd,
        "flops_train_step_per_sample": step_flops // n,
        "flops_train_step": step_flops // n * batch,
        "memory_bytes": {
            "weights": sum(p.numel() * p.element_size() for p in params),
            "buffers": sum(b.numel() * b.element_size() for b in model.buffers()),
            "gradients": sum(p.numel() * p.element_size() for p in trainable),
            "optimizer_state": opt_bytes,
            "activations_per_batch": act_bytes * batch // n,
        },
        "optimizer": recipe.optim.name,
    }


def human(n: float, unit: str = "") -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def human_bytes(n: int) -> str:
    for scale, prefix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:.2f} {prefix}"
    return f"{n} B"
