"""The decoded-data cache (trainlab.data.cache): loading Fashion-MNIST without the cache, with a
cold cache (decode and write the entry) and with a warm one (memory-map it), and the whole
`build_data` of the default recipe with the cache off and warm. Medians of --reps interleaved runs.

Run: PYTHONPATH=src python benchmarks/data_cache.py [--reps 7] [--threads 1]
The source files and the cache entries are in the page cache after the first repetition (a
first run after a reboot reads them from disk as well). Timings depend on the machine and on
whatever else runs on it: the CPU and thread count are printed with them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainlab.data import build_data, vision
from trainlab.recipe import load_recipe

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "sha_ni", "pclmulqdq")


def cpu() -> str:
    model, flags = "unknown", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name") and model == "unknown":
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
    shown = " ".join(f for f in FLAGS if f in flags) or "none of " + " ".join(FLAGS)
    return f"{model}; {os.cpu_count()} CPUs; flags: {shown}"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="trainlab-bench-cache-"))
    os.environ["TRAINLAB_CACHE"] = str(root)
    os.environ.pop("TRAINLAB_DATA_CACHE", None)
    on = load_recipe({"data": {"source": "fashion_mnist"}}).data
    off = load_recipe({"data": {"source": "fashion_mnist", "cache": False}}).data
    vision.fashion_mnist(cache=False)  # the source files into the page cache: every variant reads them warm
    times: dict[str, list[float]] = {k: [] for k in ("decode", "cold", "warm", "build_off", "build_warm")}
    try:
        for _ in range(args.reps):  # interleaved, so a busy moment of the machine hits every variant
            times["decode"].append(timed(lambda: vision.fashion_mnist(cache=False)))
            shutil.rmtree(root, ignore_errors=True)
            times["cold"].append(timed(vision.fashion_mnist))
            times["warm"].append(timed(vision.fashion_mnist))
            times["build_off"].append(timed(lambda: build_data(off, 0)))
            times["build_warm"].append(timed(lambda: build_data(on, 0)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"cpu: {cpu()}; torch threads: {torch.get_num_threads()}; medians of {args.reps}")
    labels = {"decode": "fashion_mnist, no cache (gzip IDX decode)",
              "cold": "fashion_mnist, cold cache (decode + write)",
              "warm": "fashion_mnist, warm cache (memory-mapped)",
              "build_off": "build_data default recipe, cache off",
              "build_warm": "build_data default recipe, warm cache"}
    for k, label in labels.items():
        ts = times[k]
        print(f"{label:45s} median {statistics.median(ts) * 1000:7.1f} ms  "
              f"(min {min(ts) * 1000:.1f}, max {max(ts) * 1000:.1f})")


if __name__ == "__main__":
    main()
