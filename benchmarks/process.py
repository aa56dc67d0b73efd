"""Whole-process benchmark: what a user waits for, from the shell prompt back to the shell prompt.

    python benchmarks/process.py                 # 3 interleaved repetitions of every entry (~6 min)
    python benchmarks/process.py --reps 5 --entries trainlab hand --markdown

The workload (issue 18): Fashion-MNIST, MLP 784-256-10, SGD momentum 0.9, lr 0.01, batch 64, 3
epochs on the 60,000 standardized training images (no validation split), then the test accuracy.

- `trainlab`: `trainlab train RECIPE` as a user runs it: run directory, checkpoints, evaluation,
  the six plots, report.html and TensorBoard all on (the defaults), fp32. One untimed run first
  warms what a second run of a user's finds warm: the decoded-data cache and the MFU probe.
- `hand`, `textbook`, `lightning`, `keras`: `python benchmarks/process.py --peer NAME`, a script that
  reads the gzip IDX files itself (gzip + numpy, no trainlab), standardizes them, trains with the
  loops of speed.py (the same ones `make bench` times per epoch) and prints its test accuracy.

Each run is a fresh process, in an order rotated per repetition. Reported: the median wall time of
each entry and its ratio to the hand-optimized script, and the time split of a trainlab process
(measured in separate runs with callbacks): interpreter start-up and exit, imports, data and build,
training, and what comes after training (test evaluation, plots, report, TensorBoard).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FMNIST = Path(os.environ.get("TRAINLAB_FMNIST", "/usr/share/datasets/fashion-mnist"))
ENTRIES = ["trainlab", "hand", "textbook", "lightning", "keras"]
LABELS = {"trainlab": "`trainlab train` (run dir, evaluation, plots, report, TensorBoard)",
          "hand": "hand-optimized PyTorch script", "textbook": "textbook PyTorch (DataLoader)",
          "lightning": "PyTorch Lightning", "keras": "Keras 3 (torch backend)"}
EPOCHS = 3


def recipe(root: str) -> dict:
    return {"name": "process-bench", "seed": 0,
            "data": {"source": "fashion_mnist", "val_fraction": 0.0, "preprocess": [{"normalize": "standard"}],
                     "batch_size": 64},
            "model": {"name": "mlp", "widths": [256]}, "loss": {"name": "cross_entropy"},
            "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9}, "schedule": {"name": "constant"},
            "train": {"epochs": EPOCHS, "precision": "fp32"}, "output": {"root": root}}


# --- the peers: a script a user would write ------------------------------------------------------------

def read_idx(path: Path):
    import numpy as np

    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def peer(name: str) -> int:
    import torch

    sys.path.insert(0, str(HERE))
    import speed

    x = [torch.from_numpy(read_idx(FMNIST / f"{s}-images-idx3-ubyte.gz").copy()) for s in ("train", "t10k")]
    y = [torch.from_numpy(read_idx(FMNIST / f"{s}-labels-idx1-ubyte.gz").astype("int64")) for s in ("train", "t10k")]
    xtr, xte = (t.float().div_(255).unsqueeze(1) for t in x)
    mean, std = xtr.mean(), xtr.std()
    data = ((xtr - mean) / std, y[0], (xte - mean) / std, y[1])
    w = {**speed.WORKLOADS["mlp"], "name": "mlp"}
    run = {"hand": speed.run_hand, "textbook": speed.run_textbook, "lightning": speed.run_lightning,
           "keras": speed.run_keras}[name]
    _, acc = run(w, data, EPOCHS, 0)
    print(json.dumps({"peer": name, "test_accuracy": acc}))
    return 0


# --- timing whole processes --------------------------------------------------------------------------

def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    e["KERAS_BACKEND"] = "torch"
    return e


def command(entry: str, recipe_path: Path) -> list[str]:
    if entry == "trainlab":
        return [sys.executable, "-m", "trainlab", "train", str(recipe_path)]
    return [sys.executable, str(Path(__file__).resolve()), "--peer", entry]


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return wall, res.stdout


_SPLIT = r"""
import json, sys, time
t0 = time.perf_counter()
import trainlab
from trainlab.train.callbacks import Callback
marks = {"imports": time.perf_counter() - t0}
class Marks(Callback):
    def on_fit_start(self, trainer):
        marks["fit_start"] = time.perf_counter() - t0
    def on_epoch_end(self, trainer, logs):
        marks["last_epoch_end"] = time.perf_counter() - t0
trainlab.train(sys.argv[1], progress=False, callbacks=[Marks()])
marks["end"] = time.perf_counter() - t0
print(json.dumps(marks), flush=True)
import atexit, os  # then end as the `trainlab` program does (cli.run): atexit handlers, no teardown
atexit._run_exitfuncs()
os._exit(0)
"""


def split(recipe_path: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _SPLIT, str(recipe_path)], capture_output=True, text=True,
                         env=env(), cwd=ROOT, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"time split failed:\n{res.stderr[-2000:]}")
    m = json.loads(res.stdout.strip().splitlines()[-1])
    return {"interpreter start-up and exit": wall - m["end"], "imports (trainlab, torch)": m["imports"],
            "data and build (to the first step)": m["fit_start"] - m["imports"],
            "training (3 epochs)": m["last_epoch_end"] - m["fit_start"],
            "after training (test evaluation, plots, report, TensorBoard)": m["end"] - m["last_epoch_end"],
            "whole process": wall}


def cpu() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile") if f in flags]
    return f"{model}, {os.cpu_count()} logical CPUs; flags: {', '.join(shown) or 'none of avx2/avx512/amx'}" + (
        "" if "amx_tile" in flags else " (no AMX)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer", choices=ENTRIES[1:], help=argparse.SUPPRESS)  # one peer script's run
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions of every entry (default 3)")
    p.add_argument("--entries", nargs="+", default=ENTRIES, choices=ENTRIES)
    p.add_argument("--markdown", action="store_true", help="also print the tables as one JSON line (run_all.py)")
    a = p.parse_args(argv)
    if a.peer:
        return peer(a.peer)
    if not (FMNIST / "train-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"Fashion-MNIST not found in {FMNIST} (apt-get install dataset-fashion-mnist)")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="trainlab-process-") as tmp:
        import yaml

        rp = Path(tmp) / "recipe.yaml"
        rp.write_text(yaml.safe_dump(recipe(str(Path(tmp) / "runs"))))
        if "trainlab" in a.entries:
            timed(command("trainlab", rp))  # warm-up: data cache, MFU probe, page cache
        walls: dict[str, list[float]] = {e: [] for e in a.entries}
        accs: dict[str, float] = {}
        for rep in range(a.reps):
            order = a.entries[rep % len(a.entries):] + a.entries[:rep % len(a.entries)]
            for e in order:
                wall, out = timed(command(e, rp))
                walls[e].append(wall)
                if e != "trainlab":
                    accs[e] = json.loads(out.strip().splitlines()[-1])["test_accuracy"]
                print(f"rep {rep + 1} {e}: {wall:.2f} s", file=sys.stderr, flush=True)
        if "trainlab" in a.entries:
            runs = sorted((Path(tmp) / "runs").iterdir())
            accs["trainlab"] = json.loads((runs[-1] / "eval" / "test.json").read_text())["accuracy"]
            parts = [split(rp) for _ in range(a.reps)]
    med = {e: statistics.median(v) for e, v in walls.items()}
    base = med.get("hand")
    lines = [f"CPU: {cpu()}; load average at the start {load[0]:.2f}; medians of {a.reps} interleaved "
             "whole processes each.", "", "| | whole process (s) | range | × hand script | test accuracy |",
             "|---|---|---|---|---|"]
    for e in a.entries:
        ratio = f"{med[e] / base:.2f}×" if base else "–"
        acc = accs.get(e)
        lines.append(f"| {LABELS[e]} | {med[e]:.2f} | {min(walls[e]):.2f}–{max(walls[e]):.2f} | {ratio} | "
                     f"{acc:.4f} |" if acc is not None else f"| {LABELS[e]} | {med[e]:.2f} | | {ratio} | |")
    if "trainlab" in a.entries:
        lines += ["", "Where a trainlab process spends its time (medians of the in-process split runs):", "",
                  "| part | s |", "|---|---|"]
        for k in parts[0]:
            lines.append(f"| {k} | {statistics.median(p[k] for p in parts):.2f} |")
    print("\n".join(lines))
    if a.markdown:
        print(json.dumps({"markdown": ["### whole process", "", *lines], "medians": med}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
