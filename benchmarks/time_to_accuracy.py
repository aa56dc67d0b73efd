"""Time to accuracy: train the shipped Fashion-MNIST recipes until a target test accuracy.

    python benchmarks/time_to_accuracy.py                       # both recipes, seeds 0 1 2
    python benchmarks/time_to_accuracy.py --recipes mlp --seeds 5
    python benchmarks/time_to_accuracy.py --set train.epochs=4  # try a variant of the recipe

Each run goes through trainlab's own API (`trainlab.train`) with the recipe as shipped (plots and
the HTML report off: they are written after training). A callback evaluates the test split at the
end of every epoch and stops the run at the first epoch that reaches the target. The time reported
is the wall time of training up to that epoch's end: every step, validation and checkpoint count;
data loading before training and the callback's own test evaluations do not.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# recipe, target test accuracy, time budget in seconds (the figures)
TARGETS = {"cnn": ("recipes/fashion_mnist_cnn.yaml", 0.92, 45.0), "mlp": ("recipes/fashion_mnist_mlp.yaml", 0.88, 10.0)}


def one_run(recipe: str, target: float, seed: int, overrides: list[str]) -> dict:
    import trainlab
    from trainlab.train.callbacks import Callback

    class UntilTarget(Callback):
        def __init__(self):
            self.t0, self.excluded, self.reached, self.epochs = 0.0, 0.0, None, []

        def on_fit_start(self, trainer):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, trainer, logs):
            now = time.perf_counter()
            trained = now - self.t0 - self.excluded  # earlier test evaluations are not training
            acc = float(trainer.evaluate_split("test")["accuracy"])
            self.excluded += time.perf_counter() - now
            self.epochs.append({"epoch": logs["epoch"], "time": trained, "test_accuracy": acc,
                                "mfu": logs.get("train.mfu")})
            if acc >= target and self.reached is None:
                self.reached = self.epochs[-1]
                trainer.should_stop = True
                trainer.stop_reason = f"reached test accuracy {acc:.4f} ≥ {target}"

    cb = UntilTarget()
    root = tempfile.mkdtemp(prefix="trainlab-tta-")
    sets = [f"seed={seed}", f"output.root={root}", "output.plots=false", "output.report=false", *overrides]
    trainlab.train(ROOT / recipe, sets, progress=False, callbacks=[cb])
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    last = cb.epochs[-1]
    return {"seed": seed, "reached": cb.reached is not None, "time": (cb.reached or last)["time"],
            "epochs": (cb.reached or last)["epoch"], "test_accuracy": (cb.reached or last)["test_accuracy"],
            "final_test_accuracy": last["test_accuracy"], "per_epoch": cb.epochs}


def summarize(name: str, recipe: str, target: float, budget: float, runs: list[dict]) -> tuple[list[str], str]:
    times = [r["time"] for r in runs if r["reached"]]
    reached = len(times) == len(runs)
    mean = statistics.mean(times) if times else float("nan")
    std = statistics.stdev(times) if len(times) > 1 else 0.0
    rows = [f"| {name} | {r['seed']} | {'yes' if r['reached'] else 'no'} | {r['epochs']} | {r['time']:.1f} | "
            f"{r['test_accuracy']:.4f} |" for r in runs]
    ok = reached and mean <= budget
    verdict = (f"- {recipe} reaches {target} test accuracy in ≤ {budget:.0f} s: "
               + (f"{mean:.1f} ± {std:.1f} s over {len(runs)} seeds (min {min(times):.1f}, max {max(times):.1f})"
                  if reached else f"reached in {len(times)} of {len(runs)} seeds")
               + f" → **{'PASS' if ok else 'FAIL'}**")
    return rows, verdict


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--threads", type=int, default=None, help="train.threads (default: trainlab's default)")
    p.add_argument("--max-epochs", type=int, default=None, help="cap train.epochs (quick checks only)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--markdown", action="store_true", help="end with one JSON line holding a markdown table")
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    overrides = list(a.set) + ([f"train.threads={a.threads}"] if a.threads else [])
    if a.max_epochs:
        overrides.append(f"train.epochs={a.max_epochs}")
    table = ["### Time to accuracy (test accuracy checked at each epoch end)", "",
             "| recipe | seed | reached | epochs | s of training | test acc |", "|---|---|---|---|---|---|"]
    verdicts = []
    for name in a.recipes:
        recipe, target, budget = TARGETS[name]
        runs = []
        for seed in range(a.seeds):
            r = one_run(recipe, target, seed, overrides)
            print(f"{name} seed {seed}: {'reached' if r['reached'] else 'did not reach'} {target} "
                  f"in {r['time']:.1f} s ({r['epochs']} epochs, test acc {r['test_accuracy']:.4f})",
                  file=sys.stderr, flush=True)
            runs.append(r)
        rows, verdict = summarize(name, recipe, target, budget, runs)
        table += rows
        verdicts.append(verdict)
        print(verdict, file=sys.stderr, flush=True)
    if a.markdown:
        print(json.dumps({"markdown": table, "verdicts": verdicts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
