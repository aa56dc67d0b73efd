"""Training precision in one place: which precision a run uses, its autocast context, its loss scaler.

`train.precision` is fp32, bf16, fp16 or auto. `resolve_precision` turns `auto` into one of the
others: bf16 on a CUDA GPU that supports it; on a CPU, bf16 only once the training step has been
measured and `cpu_bf16_pays` says the CPU's bf16 matmuls are fast enough for it, else fp32.
fp16 has five exponent bits, so small gradients underflow to zero: it trains with a loss scaler
(`grad_scaler`, torch's GradScaler, which runs on a CPU too) that multiplies the loss before
backward, skips a step whose scaled gradients overflowed and adapts the scale (Micikevicius et
al. 2018, "Mixed Precision Training"). bf16 has fp32's exponent range and needs none.
"""
from __future__ import annotations

import contextlib

import torch

from . import perf  # module, not its names: tests stand in for perf.peak_flops

PRECISIONS = ("fp32", "bf16", "fp16")  # what `resolve_precision` returns
BF16_MIN_STEP_FLOPS = 1e9   # below this a CPU step is dispatch-bound: bf16's casts cost more than they save
BF16_MIN_SPEEDUP = 1.5      # a CPU whose bf16 matmuls are not this much faster (no AMX) stays in fp32;
                            # the 1024² probe: 2.2× with AMX here, ~0.5× without


def cpu_bf16_pays(step_flops: float) -> bool:
    """`train.precision: auto` on a CPU: bf16 autocast when the step is compute-bound and this CPU's
    measured bf16 matmul peak is at least 1.5× its fp32 one (AMX tiles: 2.2× in the 1024² probe here,
    6.8× at 2048²; without them bf16 runs at about half the fp32 rate, see docs/performance.md).
    Both peaks are the cached probes of perf.peak_flops."""
    if step_flops < BF16_MIN_STEP_FLOPS:
        return False
    cpu = torch.device("cpu")
    return perf.peak_flops(cpu, torch.bfloat16) >= BF16_MIN_SPEEDUP * perf.peak_flops(cpu, torch.float32)


def resolve_precision(precision: str, device: torch.device, step_flops: float | None = None) -> str:
    """The precision a run trains in: `precision` itself unless it is `auto`. `auto`: bf16 on CUDA GPUs
    that support it; on a CPU bf16 when `step_flops` (FLOPs of one training step, once measured) make
    `cpu_bf16_pays`, else fp32 (measured: bf16 matmuls run at half the fp32 rate on CPUs without AMX)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and step_flops is not None and cpu_bf16_pays(step_flops):
        return "bf16"
    return "fp32"


def precision_dtype(precision: str) -> torch.dtype:
    """The autocast dtype of a resolved precision (fp32 for fp32 and anything unknown)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def autocast(device: torch.device, precision: str):
    """The context to run forward passes in: torch.autocast in bf16/fp16, no context at all in fp32
    (entering a disabled autocast costs ~3 µs per step). `auto` is resolved without a measured step."""
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=precision_dtype(precision))


def grad_scaler(precision: str, device: torch.device, closure_optimizer: str | None = None) -> torch.amp.GradScaler | None:
    """The loss scaler of a resolved precision: a GradScaler for fp16, None otherwise.

    `closure_optimizer` names an optimizer that re-evaluates the loss in a closure (L-BFGS): its line
    search compares loss values and gradients across evaluations, which a scale changing between them
    would break, and GradScaler cannot step a closure; with fp16 that is a RecipeError."""
    if precision != "fp16":
        return None
    if closure_optimizer:
        from .errors import RecipeError

        raise RecipeError(f"train.precision: fp16 needs loss scaling, which {closure_optimizer}'s closure step cannot "
                          "take; use precision fp32 or bf16 with it")
    return torch.amp.GradScaler(device.type)
