"""Where a second CPU thread starts to pay: training steps of MLPs from 0.1 to 500 MFLOP, one thread
against the default, interleaved in one process (the threshold is perf.SERIAL_STEP_FLOPS).

    python benchmarks/threads.py                 # the sweep, medians of --reps rounds
    python benchmarks/threads.py --reps 9 --markdown

Each round times --steps AdamW steps (forward, cross-entropy, backward, step) per size and thread
count, after a warm-up. Reported: FLOPs per step (counted by trainlab.perf.train_step_flops), the
median µs per step at 1 and at N threads, and N-thread time / 1-thread time (below 1: the threads pay).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from process import cpu  # noqa: E402
from trainlab.perf import SERIAL_STEP_FLOPS, default_threads, train_step_flops  # noqa: E402

# (inputs, hidden width, batch): from a small table to the Fashion-MNIST MLP and beyond
SIZES = [(30, 32, 32), (30, 64, 64), (100, 128, 64), (256, 256, 64), (784, 128, 64), (784, 256, 128),
         (784, 512, 128), (784, 1024, 256)]


def step_fn(d_in: int, width: int, batch: int):
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    x, y = torch.randn(batch, d_in, generator=g), torch.randint(0, 10, (batch,), generator=g)
    loss_fn = nn.CrossEntropyLoss()
    flops = train_step_flops(model, loss_fn, x, y)

    def step():
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, flops


def time_steps(step, threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    for _ in range(5):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=default_threads(), help="the many-thread count (default: trainlab's)")
    p.add_argument("--markdown", action="store_true", help="end with one JSON line holding a markdown table")
    args = p.parse_args(argv)
    fns = [(size, *step_fn(*size)) for size in SIZES]
    times: dict[tuple, dict[int, list[float]]] = {size: {1: [], args.threads: []} for size in SIZES}
    for _ in range(args.reps):
        for size, step, _flops in fns:
            for threads in (1, args.threads):  # interleaved: the same moment of the machine for both
                times[size][threads].append(time_steps(step, threads, args.steps))
    rows = [f"CPU: {cpu()}; threshold perf.SERIAL_STEP_FLOPS = {SERIAL_STEP_FLOPS / 1e6:.0f} MFLOP", "",
            f"| inputs-width-batch | MFLOP/step | µs/step, 1 thread | µs/step, {args.threads} threads | "
            f"{args.threads} / 1 |", "|---|---|---|---|---|"]
    for size, _step, flops in fns:
        one, many = statistics.median(times[size][1]), statistics.median(times[size][args.threads])
        rows.append(f"| {'-'.join(map(str, size))} | {flops / 1e6:.2f} | {one:.0f} | {many:.0f} | {many / one:.2f} |")
    print("\n".join(rows))
    if args.markdown:
        print(json.dumps({"markdown": "\n".join(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
