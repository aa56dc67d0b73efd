"""Model FLOP utilization (MFU): how much of the device's measured peak a training run uses.

    MFU = FLOPs per training step × training steps per second ÷ peak FLOP/s

(the definition of Chowdhery et al., "PaLM", 2022, appendix B). The FLOPs of a step are counted
once, before training, by torch.utils.flop_counter on one real batch: forward plus backward, a
multiply-add counted as 2, matmuls, convolutions and attention only (element-wise ops are not
counted, as in `trainlab summary`). The peak is not a datasheet figure but a short probe: the best
rate of large square matmuls in the training dtype at the run's thread count, cached per machine in
~/.cache/trainlab/peak_flops.json (delete the file to measure again).

A probe on a busy machine reads low, so the cache keeps the best probe a machine key ever measured
(a lower probe never replaces it), and a run whose achieved rate comes within REFRESH_AT of the peak
probes again, briefly and once (`peak_for`). A rate no probe reached is the peak itself then: MFU is
at most 100% by construction. The machine key names the CPU model, its family/model/stepping and a
hash of its feature flags (a virtual machine's model name can be as vague as "AMD EPYC"), so a cache
file copied from another machine is never read as this one's.
"""
from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import json
import logging
import math
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
REPROBE_SECONDS = 0.1  # the re-probe of a run that came close to the peak: about 4 repetitions on a CPU
REFRESH_AT = 0.8  # a run at this fraction of the cached peak (or above) probes again, once

log = logging.getLogger("trainlab")


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


# Below this many FLOPs per training step (forward and backward), torch on a CPU trains with one
# thread: each matmul of such a step is a few microseconds of work, less than handing half of it to a
# second thread and waiting for it, and far less when another process holds that core (OpenMP's
# barrier then waits for a descheduled thread: 20-40x slower steps measured on a busy 2-core machine;
# benchmarks/threads.py measures the crossover side by side).
SERIAL_STEP_FLOPS = 20e6


def threads_for_step(step_flops: float, threads: int) -> int:
    """The CPU threads for a training step of `step_flops`: one for a small step, else `threads`."""
    return 1 if step_flops < SERIAL_STEP_FLOPS else threads


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
    return fields


def device_name(device: torch.device) -> str:
    """The device as the peak cache keys it. A CPU: its model name, family/model/stepping and a
    hash of its feature flags (AVX-512, AMX and the like decide the peak; a hypervisor may give
    different machines one vague model name)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        info = _cpuinfo()
        name = info.get("model name") or platform.processor() or platform.machine()
        ids = "/".join(info.get(k, "?") for k in ("cpu family", "model", "stepping"))
        flags = " ".join(sorted((info.get("flags") or info.get("Features") or "").split()))
        return f"{name} ({ids}, flags {hashlib.sha256(flags.encode()).hexdigest()[:8]})"
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
    t0 = time.perf_counter()
    torch.mm(a, b)  # warm-up: thread pool, kernel selection
    _sync(device)
    # a dtype the device has no fast kernel for (fp16 on most CPUs) takes seconds per matmul: time
    # them one by one then, so that a probe stays near its budget
    reps = 4 if time.perf_counter() - t0 < seconds / 8 else 1
    best, spent = 0.0, 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        _sync(device)
        dt_ = time.perf_counter() - t0
        spent += dt_
        best = max(best, reps * 2 * n**3 / dt_)
    return best


def _flops_of(entry: Any) -> float:
    """A cache entry's peak, 0 for anything that is not a positive finite number (a corrupt entry)."""
    flops = entry.get("flops") if isinstance(entry, dict) else None
    if isinstance(flops, bool) or not isinstance(flops, (int, float)) or not math.isfinite(flops):
        return 0.0
    return max(float(flops), 0.0)


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache file's entries; a missing, unreadable or corrupt file reads as empty (and is
    replaced at the next write)."""
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _cache_key(device: torch.device, dtype: torch.dtype) -> str:
    return f"{device_name(device)} | {device.type} | {str(dtype).removeprefix('torch.')} | {torch.get_num_threads()} threads"


def peak_flops(device: torch.device, dtype: torch.dtype = torch.float32, refresh: bool = False,
               seconds: float = PROBE_SECONDS) -> float:
    """The device's measured peak FLOP/s for `dtype` at the current thread count: the best probe
    ever cached for this machine key, probed once when there is none. `refresh` probes again for
    `seconds` (e.g. on a machine that was busy) and returns the best of that probe and the cache:
    a lower probe never replaces a higher one."""
    key, path = _cache_key(device, dtype), cache_path()
    cached = _flops_of(_read_cache(path).get(key))
    if cached > 0 and not refresh:
        return cached
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        probe = measure_peak(device, dtype, seconds)
    now = dt.datetime.now().isoformat(timespec="seconds")
    cache = _read_cache(path)  # read again: another run may have written meanwhile
    entry = cache.get(key) if _flops_of(cache.get(key)) > 0 else {}
    best = max(_flops_of(entry), cached, probe)
    before = (entry["probes"] if isinstance(entry.get("probes"), int) else 1) if entry else 0
    cache[key] = {"flops": best, "measured": entry.get("measured", now) if best > probe else now,
                  "probes": before + 1, "last_probe": probe, "last_measured": now}
    with contextlib.suppress(OSError):  # a read-only home costs a probe per run, nothing more
        from .io import atomic_write

        atomic_write(path, json.dumps(cache, indent=2) + "\n")
    return best


def peak_for(achieved: float, peak: float, device: torch.device, dtype: torch.dtype = torch.float32,
             reprobe: bool = True) -> tuple[float, str]:
    """The peak to divide a run's `achieved` FLOP/s by, given the cached `peak`, so that MFU is at
    most 1. With `reprobe` and `achieved` at REFRESH_AT of `peak` or above: a short probe first (its
    best joins the cache). A rate above every probe becomes the peak itself (a warning says so on
    the call that re-probed: once per run). Returns (peak, how): how is "cached" (no probe),
    "reprobed" (a probe, and it reached `achieved`) or "achieved" (the run's own rate is the peak)."""
    how = "cached"
    if reprobe and achieved >= REFRESH_AT * peak:
        peak, how = max(peak, peak_flops(device, dtype, refresh=True, seconds=REPROBE_SECONDS)), "reprobed"
    if achieved > peak:
        if reprobe:
            log.warning("MFU: this run computes %.0f GFLOP/s, more than any matmul probe of this machine "
                        "(%.0f GFLOP/s): its own rate is the peak", achieved / 1e9, peak / 1e9)
        peak, how = achieved, "achieved"
    return peak, how


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
    """The line `trainlab train` prints at the end: the run's MFU over all its epochs, against the
    highest peak any of them used (the peak only rises during a run; a resumed run may have probed
    lower), so at most 100%."""
    epochs = [h for h in history if h.get("train.mfu") is not None and h.get("train.time")]
    if not epochs:
        return None
    time_ = sum(h["train.time"] for h in epochs)
    achieved = sum(h["train.mfu"] * h["train.peak_flops"] * h["train.time"] for h in epochs) / time_
    peak = max(h["train.peak_flops"] for h in epochs)
    # an epoch at exactly 100% divided by its own rate: no probe reached it (peak_for)
    own = " (this run's own rate: no matmul probe reached it)" if any(h["train.mfu"] >= 1 for h in epochs) else ""
    return (f"MFU {achieved / peak:.1%}: {achieved / 1e9:.2f} GFLOP/s of a measured {peak / 1e9:.0f} GFLOP/s peak{own} "
            f"({epochs[-1]['train.flops_per_step'] / 1e6:.1f} MFLOP per step, {time_:.1f} s of training, "
            f"{threads} threads{', ' + precision if precision else ''})")
