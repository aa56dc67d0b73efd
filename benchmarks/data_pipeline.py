"""Data pipeline timings: loading Fashion-MNIST, one training epoch through the in-memory fast
path against the streaming DataLoader (same batches), and each augmentation per batch.

Run: PYTHONPATH=src python benchmarks/data_pipeline.py [--threads 1] [--workers 2]
Timings depend on the machine and on whatever else runs on it: report the thread count with them.
"""
from __future__ import annotations

import argparse
import time

import torch

from trainlab.data import AUGMENTS, StreamingLoader, TensorLoader, build_augment, build_data
from trainlab.recipe import load_recipe


def epoch_seconds(loader, steps: int | None = None) -> tuple[float, list[torch.Tensor]]:
    """One epoch of an MLP 784-256-10 SGD step per batch; returns the time and the first targets seen."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    seen = []
    t0 = time.perf_counter()
    for i, (xb, yb) in enumerate(loader):
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i < 3:
            seen.append(yb.clone())
        if steps and i + 1 >= steps:
            break
    return time.perf_counter() - t0, seen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    r = load_recipe({"data": {"source": "fashion_mnist", "preprocess": [{"normalize": "standard"}]}})
    t0 = time.perf_counter()
    b = build_data(r.data, r.seed)
    print(f"threads {args.threads}; build_data(fashion_mnist, normalize): {time.perf_counter() - t0:.2f} s, "
          f"train {len(b.train)}, val {len(b.val)}, test {len(b.test)}")
    fast, seen_fast = epoch_seconds(TensorLoader(b.train, args.batch, seed=0))
    stream, seen_stream = epoch_seconds(StreamingLoader(b.train, args.batch, seed=0, workers=args.workers))
    same = all(torch.equal(a, c) for a, c in zip(seen_fast, seen_stream))
    print(f"epoch, MLP 784-256-10, batch {args.batch}: fast path {fast:.2f} s, streaming ({args.workers} workers) "
          f"{stream:.2f} s, ratio {stream / fast:.2f}; same batches: {same}")
    x, y = b.train.x[:256], b.train.y[:256]
    print("augmentation, ms per batch of 256 1×28×28 (mean of 20):")
    for name in AUGMENTS.names():
        aug = build_augment([name], b.info, "cpu", 0)
        aug(x, y)  # warm-up (kornia imports)
        t0 = time.perf_counter()
        for _ in range(20):
            aug(x, y)
        print(f"  {name:12s} {(time.perf_counter() - t0) / 20 * 1000:6.2f}")


if __name__ == "__main__":
    main()
