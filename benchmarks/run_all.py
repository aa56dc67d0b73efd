"""`make bench`: every benchmark, one table, written to benchmarks/results.md.

    python benchmarks/run_all.py                 # the full measurement (~40 min on 2 quiet cores)
    python benchmarks/run_all.py --quick         # a smoke run of everything (~3 min; figures meaningless)
    python benchmarks/run_all.py --skip-tta --reps 3 --loops trainlab hand

1. Speed: for each workload (the MLP and the convnet recipe's model), each repetition runs every
   loop once (trainlab twice: through `train()` with its run directory, and its loop alone), each
   in its own process (`speed.py`), in an order rotated per repetition, so that a
   slow patch of the machine hits every loop alike. Reported: the median over repetitions of each
   run's s/epoch, test accuracy, and the ratios to trainlab (of the medians, and the range of the
   per-repetition ratios).
2. Whole process (`process.py`): the MLP workload as a whole process from the shell, trainlab
   (`trainlab train`, every artifact on) beside the four peers' scripts, and a trainlab process's
   time split.
3. Time to accuracy (`time_to_accuracy.py`): the shipped recipes over several seeds.
4. Serving (`serve.py`): `trainlab serve` under a bounded local load, both backends, batching on/off,
   beside a minimal FastAPI endpoint and LitServe.
5. The machine: CPU model, cores, threads, torch and peer versions, date, and the measured matmul
   peak (probed afresh: the cached one may come from a busy moment).

Run it on a quiet machine: another process on the cores changes every figure.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from speed import CNN_STEM, CNN_WIDTHS, WORKLOADS  # noqa: E402  (the workloads' own definitions)
LOOPS = ["trainlab", "trainlab-loop", "hand", "textbook", "lightning", "keras"]
LABELS = {"trainlab": "trainlab (train(): run dir, checkpoint per epoch)",
          "trainlab-loop": "trainlab loop (Trainer.fit, no run dir)", "hand": "hand-optimized PyTorch", "textbook": "textbook PyTorch (DataLoader)",
          "lightning": "PyTorch Lightning", "keras": "Keras 3 (torch backend)"}
# what the issue asks of each workload: (other loop, ratio other/trainlab must reach, which way)
CLAIMS = {
    "mlp": [("hand", 1 / 1.05, "trainlab ≤ 1.05× hand-optimized"), ("lightning", 1.8, "≥ 1.8× faster than Lightning"),
            ("keras", 3.0, "≥ 3× faster than Keras")],
    "convnet": [("hand", 1 / 1.05, "trainlab ≤ 1.05× hand-optimized")],
}


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    e["KERAS_BACKEND"] = "torch"
    return e


def one_run(loop: str, workload: str, epochs: int, threads: int | None, subset: int | None) -> dict | None:
    return one_run_args(loop, workload, epochs, threads, subset, [])


def one_run_args(loop: str, workload: str, epochs: int, threads: int | None, subset: int | None,
                 extra: list[str]) -> dict | None:
    """One `speed.py` process; its JSON result, or None (and a line saying why) if it failed."""
    cmd = [sys.executable, str(HERE / "speed.py"), "--loop", loop, "--workload", workload, "--epochs", str(epochs)]
    if threads:
        cmd += ["--threads", str(threads)]
    if subset:
        cmd += ["--subset", str(subset)]
    cmd += extra
    res = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, check=False)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {loop}: failed ({last})", flush=True)
        return None
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  {loop:10s} {out['s_per_epoch']:.3f} s/epoch  test acc {out['test_accuracy']:.4f}  {' '.join(extra)}",
          flush=True)
    return out


def speed(workload: str, loops: list[str], reps: int, epochs: int, threads: int | None,
          subset: int | None) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {loop: [] for loop in loops}
    for r in range(reps):
        order = loops[r % len(loops):] + loops[:r % len(loops)]  # rotate who goes first
        print(f"{workload}: repetition {r + 1}/{reps}", flush=True)
        for loop in order:
            out = one_run(loop, workload, epochs, threads, subset)
            if out is not None:
                out["rep"] = r
                runs[loop].append(out)
    return runs


def speed_table(workload: str, runs: dict[str, list[dict]], epochs: int) -> tuple[list[str], list[str]]:
    """Markdown table lines and verdict lines for one workload."""
    med = {k: statistics.median(r["s_per_epoch"] for r in v) for k, v in runs.items() if v}
    lines = [f"### {workload} ({epochs} epochs per run; s/epoch = median over epochs 2..{epochs}, then over runs)", "",
             "| loop | s/epoch (median) | min – max | runs | × trainlab's time | test acc (median) |",
             "|---|---|---|---|---|---|"]
    base = med.get("trainlab")
    for loop, rs in runs.items():
        if not rs:
            lines.append(f"| {LABELS[loop]} | failed | | 0 | | |")
            continue
        t = [r["s_per_epoch"] for r in rs]
        ratio = f"{med[loop] / base:.2f}" if base else "-"
        lines.append(f"| {LABELS[loop]} | {med[loop]:.3f} | {min(t):.3f} – {max(t):.3f} | {len(rs)} | {ratio} | "
                     f"{statistics.median(r['test_accuracy'] for r in rs):.4f} |")
    if runs.get("trainlab") and "train.mfu" in runs["trainlab"][0]:
        m = statistics.median(r["train.mfu"] for r in runs["trainlab"])
        lines += ["", (f"trainlab MFU (last epoch, median over runs): {m:.1%} "
                      f"({runs['trainlab'][0]['train.flops_per_step'] / 1e6:.1f} MFLOP per step)")]
    verdicts = []
    for mine in ("trainlab", "trainlab-loop"):  # with its run directory, and the loop alone
        for other, need, text in CLAIMS.get(workload, []):
            if not (med.get(mine) and med.get(other)):
                verdicts.append(f"- {workload}, {mine}: {text}: not measured")
                continue
            ratio = med[other] / med[mine]  # how many times trainlab's time the other loop takes
            paired = sorted(o["s_per_epoch"] / t["s_per_epoch"] for o in runs[other] for t in runs[mine]
                            if o["rep"] == t["rep"])
            shown = (f"{mine} / hand = {1 / ratio:.3f}" if other == "hand" else f"{other} / {mine} = {ratio:.2f}")
            rng = (f"; per repetition {1 / paired[-1]:.3f} – {1 / paired[0]:.3f}" if other == "hand" and paired
                   else f"; per repetition {paired[0]:.2f} – {paired[-1]:.2f}" if paired else "")
            verdicts.append(f"- {workload}, {mine}: {text}: {shown}{rng} → **{'PASS' if ratio >= need else 'FAIL'}**")
    return lines, verdicts


def machine(threads: int | None) -> list[str]:
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from trainlab.perf import default_threads, device_name, peak_flops

    n = threads or default_threads()
    torch.set_num_threads(n)
    peak = peak_flops(torch.device("cpu"), refresh=True)
    versions = [f"torch {torch.__version__}"]
    for mod in ("lightning", "keras"):
        try:
            versions.append(f"{mod} {__import__('importlib.metadata').metadata.version(mod)}")
        except Exception:  # noqa: BLE001 - a missing peer is reported, not fatal
            versions.append(f"{mod} not installed")
    load = os.getloadavg()
    return [f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
            f"- machine: {platform.node()}, {platform.platform()}",
            (f"- CPU: {device_name(torch.device('cpu'))}, {os.cpu_count()} logical CPUs, "
            f"{len(os.sched_getaffinity(0))} usable"),
            f"- threads: {n} (torch.set_num_threads in every run)",
            f"- measured fp32 matmul peak: {peak / 1e9:.0f} GFLOP/s (the best probe cached for this machine)",
            f"- Python {platform.python_version()}, {', '.join(versions)}",
            (f"- load average at the start: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} "
            "(above ~0.3 the figures are not from a quiet machine)")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="repetitions of every loop on the MLP (default 5)")
    p.add_argument("--convnet-reps", type=int, default=3, help="repetitions of every loop on the convnet (default 3)")
    p.add_argument("--mlp-epochs", type=int, default=3, help="epochs per MLP run (default 3)")
    p.add_argument("--convnet-epochs", type=int, default=2, help="epochs per convnet run (default 2)")
    p.add_argument("--workloads", nargs="+", default=["mlp", "convnet"], choices=["mlp", "convnet"])
    p.add_argument("--loops", nargs="+", default=LOOPS, choices=LOOPS)
    p.add_argument("--seeds", type=int, default=3, help="seeds per recipe for time to accuracy (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: trainlab's default)")
    p.add_argument("--skip-tta", action="store_true", help="skip time to accuracy")
    p.add_argument("--skip-knobs", action="store_true", help="skip the knob measurements (knobs.py)")
    p.add_argument("--skip-process", action="store_true", help="skip the whole-process benchmark (process.py)")
    p.add_argument("--process-reps", type=int, default=3, help="repetitions of every whole process (default 3)")
    p.add_argument("--knob-reps", type=int, default=3, help="repetitions per knob (default 3)")
    p.add_argument("--skip-serve", action="store_true", help="skip the serving benchmark (serve.py)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 repetition, 2 epochs on 6000 samples; time to accuracy: the MLP recipe, 1 seed, 1 epoch")
    p.add_argument("--out", default=str(HERE / "results.md"))
    a = p.parse_args(argv)
    subset = None
    if a.quick:
        a.reps, a.convnet_reps, a.mlp_epochs, a.convnet_epochs, a.seeds, subset = 1, 1, 2, 2, 1, 6000
    head = machine(a.threads)
    print("\n".join(head), flush=True)
    body, verdicts = [], []
    for wl in a.workloads:
        epochs = a.mlp_epochs if wl == "mlp" else a.convnet_epochs
        runs = speed(wl, a.loops, a.reps if wl == "mlp" else a.convnet_reps, epochs, a.threads, subset)
        lines, v = speed_table(wl, runs, epochs)
        body += lines + [""]
        verdicts += v
    if not a.skip_process:
        cmd = [sys.executable, str(HERE / "process.py"), "--reps", str(1 if a.quick else a.process_reps),
               "--markdown"]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, check=False)
        sys.stderr.write(res.stderr[-3000:])
        body += (json.loads(res.stdout.strip().splitlines()[-1])["markdown"] if res.returncode == 0
                 else ["### whole process", "", "failed: see the output of process.py"]) + [""]
    if not a.skip_knobs:
        cmd = [sys.executable, str(HERE / "knobs.py"), "--reps", str(1 if a.quick else a.knob_reps), "--markdown"]
        if subset:
            cmd += ["--subset", str(subset)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, check=False)
        sys.stderr.write(res.stderr[-3000:])
        body += (json.loads(res.stdout.strip().splitlines()[-1])["markdown"] if res.returncode == 0
                 else ["### knobs", "", "failed: see the output of knobs.py"]) + [""]
    if not a.skip_serve:
        cmd = [sys.executable, str(HERE / "serve.py"), "--markdown"] + (["--reps", "1", "--models", "mlp"] if a.quick else [])
        res = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, check=False)
        sys.stderr.write(res.stderr[-3000:])
        serve = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
        body += (serve["markdown"] if serve else ["### serving", "", "failed: see the output of serve.py"]) + [""]
        verdicts += serve["verdicts"] if serve else []
    if not a.skip_tta:
        cmd = [sys.executable, str(HERE / "time_to_accuracy.py"), "--seeds", str(a.seeds), "--markdown"]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        if a.quick:
            cmd += ["--max-epochs", "1", "--recipes", "mlp"]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, check=False)
        sys.stderr.write(res.stderr[-2000:])
        tta = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
        if tta is None:
            body += ["### time to accuracy", "", "failed: see the output of time_to_accuracy.py", ""]
        else:
            body += tta["markdown"] + [""]
            verdicts += tta["verdicts"]
    text = "\n".join(["# trainlab benchmarks", "", "Written by `make bench` (benchmarks/run_all.py"
                      + (" --quick: a smoke run, not a measurement" if a.quick else "") + ").", "",
                      "## Machine", "", *head, "", "## What the issue asks (ratios from this one run)", "",
                      *verdicts, "", "## Speed: seconds per training epoch on Fashion-MNIST", "",
                      (f"Same model, data ({subset or 60000:,} standardized images, no validation split), batch size, SGD "
                      "(momentum 0.9, constant LR) and seed for every loop; each run a fresh process; "
                      "MLP 784-256-10 at batch 64, lr 0.01; the CNN recipe's convnet (BN, stride-2 downsampling, "
                      f"widths {'-'.join(map(str, CNN_WIDTHS))}, first conv stride {CNN_STEM}) at batch "
                      f"{WORKLOADS['convnet']['batch']}, lr 0.05; every loop in fp32. trainlab runs through "
                      "`trainlab.train()` with a run directory (checkpoints, metrics.jsonl; plots, TensorBoard "
                      "and report off); the trainlab loop is the same Trainer without a run directory, writing "
                      "nothing, like the other loops."),
                      "", *body])
    Path(a.out).write_text(text + "\n")
    print("\n".join(verdicts))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
