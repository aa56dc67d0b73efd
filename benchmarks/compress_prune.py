"""Pruning at full scale: the issue's "what it must show" for pruning (issue 21).

1. recipes/fashion_mnist_mlp.yaml (5 epochs), global unstructured 80% + fine-tuning: test accuracy
   change (must be within 1 point) and compact / dense model.safetensors (must be <= 40%).
2. recipes/fashion_mnist_cnn.yaml (6 epochs; --cnn-epochs to train it shorter), structured 50% of
   every conv's channels + fine-tuning: params and FLOPs cut (>= 40%), accuracy change (within 2
   points), eager latency at batch 256 before/after.

    PYTHONPATH=src python benchmarks/compress_prune.py [--cnn-epochs 6] [--ft-epochs 2] [--root DIR]

Prints the figures, the CPU and its flags, the thread count; the comparison tables are written
into each child's compare/ folder. Takes a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import platform
import re
import subprocess
import tempfile
from pathlib import Path

import torch

import trainlab
from trainlab.api import load_run
from trainlab.compress.prune import prune_run, sparsity
from trainlab.compress.report import compare, markdown
from trainlab.recipe import read_yaml

REPO = Path(__file__).resolve().parents[1]


def cpu_line() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    name = re.search(r"Model name:\s*(.+)", out)
    flags = sorted(set(re.findall(r"\b(amx\w*|avx512_vnni|avx512_bf16|avx512f|avx2)\b", out)))
    return f"{name.group(1).strip() if name else '?'}; flags: {' '.join(flags) or 'none of amx/avx512/avx2'}"


def parent(recipe: str, root: Path, epochs: int | None = None) -> Path:
    raw = read_yaml(REPO / "recipes" / recipe)
    raw.setdefault("output", {})["root"] = str(root)
    if epochs is not None:
        raw["train"]["epochs"] = epochs
    return trainlab.train(raw, progress=False).path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", help="where the runs go (default: a temporary folder)")
    p.add_argument("--cnn-epochs", type=int, default=6)
    p.add_argument("--ft-epochs", type=int, default=2)
    p.add_argument("--lr-scale", type=float, default=0.3, help="fine-tuning LR = the parent's times this")
    p.add_argument("--latency-runs", type=int, default=50)
    args = p.parse_args()
    root = Path(args.root or tempfile.mkdtemp(prefix="trainlab-prune-bench-"))
    print(f"CPU: {cpu_line()}; torch {torch.__version__}, {torch.get_num_threads()} threads; runs in {root}")

    mlp = parent("fashion_mnist_mlp.yaml", root)
    child = prune_run(load_run(mlp), {"sparsity": 0.8, "scope": "global", "epochs": args.ft_epochs,
                                      "lr_scale": args.lr_scale}, progress=False).path
    rows, _ = compare(mlp, [child], repeats=args.latency_runs)
    print(f"\n## MLP 784-256-10 (5 epochs), global unstructured 80% + {args.ft_epochs} fine-tuning epochs")
    print(markdown(rows))
    a, b = rows
    print(f"sparsity of the prunable weights: {sparsity(load_run(child).model):.4f}")
    print(f"accuracy change: {b['accuracy_change'] * 100:+.2f} points (must be within 1)")
    print(f"compact / dense model.safetensors: {b['file_bytes']} / {a['file_bytes']} = {b['file_ratio']:.3f} "
          "(must be <= 0.40)")

    cnn = parent("fashion_mnist_cnn.yaml", root, args.cnn_epochs)
    child = prune_run(load_run(cnn), {"structured": True, "amount": 0.5, "norm": "l1", "epochs": args.ft_epochs,
                                      "lr_scale": args.lr_scale}, progress=False).path
    rows, _ = compare(cnn, [child], repeats=args.latency_runs)
    print(f"\n## convnet 32-96-192 ({args.cnn_epochs} epochs), structured 50% channels + {args.ft_epochs} "
          "fine-tuning epochs")
    print(markdown(rows))
    a, b = rows
    print(f"widths: {load_run(cnn).recipe.model.widths} -> {load_run(child).recipe.model.widths}")
    print(f"params cut: {1 - b['params_ratio']:.1%}, FLOPs/sample cut: {1 - b['flops_ratio']:.1%} (must be >= 40%)")
    print(f"accuracy change: {b['accuracy_change'] * 100:+.2f} points (must be within 2)")
    print(f"latency at batch 256 (eager, median of {args.latency_runs}, {a['threads']} threads): "
          f"{a['latency_ms_b256']:.2f} ms -> {b['latency_ms_b256']:.2f} ms")


if __name__ == "__main__":
    main()
