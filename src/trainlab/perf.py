"""Model FLOP utilization (MFU): how much of the device's measured peak a training run uses.

    MFU = FLOPs per training step × training steps per second ÷ peak FLOP/s

(the definition of Chowdhery et al., "PaLM", 2022, appendix B). The FLOPs of a step are counted
once, before training, by torch.utils.flop_counter on one real batch: forward plus backward, a
multiply-add counted as 2, matmuls, convolutions and attention only (element-wise ops are not
counted, as in `trainlab summary`). The peak is not a datasheet figure but a short probe: the best
rate of large square matmuls in the training dtype at the run's thread count, measured once per
machine and cached in ~/.cache/trainlab/peak_flops.json (delete the file to measure again).
"""
from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

PROBE_SECONDS = 0.3  # matmul time per probe; the best of its repetitions is the peak


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trainlab" / "peak_flops.json"


def default_threads() -> int:
    """Torch's own choice (one thread per physical core) capped by the CPUs this process may use:
    more threads than cores only adds OpenMP contention (see docs/performance.md)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), usable))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        return platform.processor() or platform.machine()
    return device.type


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure_peak(device: torch.device, dtype: torch.dtype = torch.float32, seconds: float = PROBE_SECONDS) -> float:
    """The best FLOP/s of n×n matmuls (2n³ FLOPs each) over about `seconds` on `device`."""
    n = 1024 if device.type == "cpu" else 4096
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)  # warm-up: thread pool, kernel selection
    _sync(device)
    best, spent = 0.0, 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        _sync(device)
        dt_ = time.perf_counter() - t0
        spent += dt_
        best = max(best, 4 * 2 * n**3 / dt_)
    return best


def peak_flops(device: torch.device, dtype: torch.dtype = torch.float32, refresh: bool = False) -> float:
    """The device's measured peak FLOP/s for `dtype` at the current thread count, probed once per
    (device, dtype, threads) and cached; `refresh` probes again (e.g. on a machine that was busy)."""
    key = f"{device_name(device)} | {device.type} | {str(dtype).removeprefix('torch.')} | {torch.get_num_threads()} threads"
    path = cache_path()
    cache: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        cache = json.loads(path.read_text())
    if not refresh and isinstance(cache.get(key), dict) and cache[key].get("flops", 0) > 0:
        return float(cache[key]["flops"])
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        flops = measure_peak(device, dtype)
    cache[key] = {"flops": flops, "measured": dt.datetime.now().isoformat(timespec="seconds")}
    with contextlib.suppress(OSError):  # a read-only home costs a probe per run, nothing more
        from .io import atomic_write

        atomic_write(path, json.dumps(cache, indent=2) + "\n")
    return flops


@contextlib.contextmanager
def countable(model: nn.Module):
    """Run every op where FlopCounterMode can see it: on CPU the fused flash-attention kernel and
    oneDNN's recurrent layers have no FLOP formula, their reference implementations (plain
    matmuls) do. Same arithmetic, only the kernel changes."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        if any(isinstance(m, nn.RNNBase) for m in model.modules()):
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
            stack.enter_context(torch.backends.mkldnn.flags(enabled=False))
        yield


def train_step_flops(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> int | None:
    """FLOPs of one training step's forward and backward on the batch (x, y), counted on a copy of
    the model (batch-norm statistics and every RNG stay untouched). None if a layer cannot be counted."""
    try:
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            clone = copy.deepcopy(model).train()
            with countable(clone), FlopCounterMode(display=False) as fc:
                loss = loss_fn(clone(x), y)
                loss.backward()
        return int(fc.get_total_flops())
    except Exception:  # noqa: BLE001 - an accounting feature must never stop a run: no MFU then
        return None


def mfu(flops_per_sample: float, samples_per_s: float, peak: float) -> float:
    """Model FLOP utilization: achieved FLOP/s over the peak."""
    return flops_per_sample * samples_per_s / peak if peak > 0 else float("nan")


def summary_line(history: list[dict[str, Any]], threads: int, precision: str | None = None) -> str | None:
    """The line `trainlab train` prints at the end: the run's MFU over all its epochs."""
    epochs = [h for h in history if h.get("train.mfu") is not None and h.get("train.time")]
    if not epochs:
        return None
    time_ = sum(h["train.time"] for h in epochs)
    achieved = sum(h["train.mfu"] * h["train.peak_flops"] * h["train.time"] for h in epochs) / time_
    peak = epochs[-1]["train.peak_flops"]
    return (f"MFU {achieved / peak:.1%}: {achieved / 1e9:.2f} GFLOP/s of a measured {peak / 1e9:.0f} GFLOP/s peak "
            f"({epochs[-1]['train.flops_per_step'] / 1e6:.1f} MFLOP per step, {time_:.1f} s of training, "
            f"{threads} threads{', ' + precision if precision else ''})")
