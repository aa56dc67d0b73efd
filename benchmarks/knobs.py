"""The measured defaults: each speed knob of the recipe, default against the alternative.

    python benchmarks/knobs.py --reps 3            # every knob
    python benchmarks/knobs.py --knobs channels_last --reps 5

Each measurement is one trainlab run of `speed.py` (a fresh process, full Fashion-MNIST, no
validation split), the default and the alternative interleaved over the repetitions. Reported: the
median s/epoch of the epochs after the first, and the first epoch (which pays for torch.compile).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

from run_all import one_run_args

# name: (workload, epochs, default's extra args, alternative's extra args, what the alternative is)
KNOBS = {
    "channels_last": ("convnet", 2, [], ["--set", "train.channels_last=false"], "train.channels_last: false"),
    "threads": ("mlp", 2, [], ["--threads", "1"], "train.threads: 1 (default: one per core)"),
    "threads_convnet": ("convnet", 2, [], ["--threads", "1"], "train.threads: 1, convnet"),
    "log_every": ("mlp", 2, [], ["--set", "train.log_every=1"], "train.log_every: 1 (a device sync every step)"),
    "precision": ("mlp", 2, ["--set", "train.precision=auto"], ["--set", "train.precision=bf16"],
                  "train.precision: bf16 on CPU (auto keeps the MLP in fp32)"),
    "precision_convnet": ("convnet", 2, ["--set", "train.precision=auto"], [],
                          "train.precision: fp32, convnet (auto: bf16 where the CPU's bf16 peak is ≥ 1.5× fp32)"),
    "lean_step": ("mlp", 2, [], ["--set", "train.lean_step=false"],
                  "train.lean_step: false (torch.optim's `step()` and `zero_grad()`)"),
    "compile": ("mlp", 3, [], ["--set", "train.compile=true"], "train.compile: true"),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--knobs", nargs="+", default=list(KNOBS), choices=list(KNOBS))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--subset", type=int, default=None, help="train on this many samples (quick checks only)")
    p.add_argument("--markdown", action="store_true", help="end with one JSON line holding a markdown table")
    a = p.parse_args(argv)
    table = ["### Knobs: trainlab's default against the alternative (s/epoch, median over runs)", "",
             "| knob | workload | default | alternative | alternative / default | first epoch: default, alternative |",
             "|---|---|---|---|---|---|"]
    for name in a.knobs:
        workload, epochs, base, alt, label = KNOBS[name]
        got: dict[str, list[dict]] = {"default": [], "alternative": []}
        for r in range(a.reps):
            for which in (("default", "alternative") if r % 2 == 0 else ("alternative", "default")):
                extra = base if which == "default" else alt
                out = one_run_args("trainlab", workload, epochs, None, a.subset, extra)
                if out is not None:
                    got[which].append(out)
        if not (got["default"] and got["alternative"]):
            table.append(f"| {label} | {workload} | failed | | | |")
            continue
        d, v = (statistics.median(r["s_per_epoch"] for r in got[k]) for k in ("default", "alternative"))
        f0, f1 = (statistics.median(r["epochs"][0] for r in got[k]) for k in ("default", "alternative"))
        table.append(f"| {label} | {workload} | {d:.3f} | {v:.3f} | {v / d:.2f} | {f0:.2f}, {f1:.2f} |")
        print(table[-1], file=sys.stderr, flush=True)
    if a.markdown:
        print(json.dumps({"markdown": table}))
    else:
        print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
