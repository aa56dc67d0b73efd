"""Start-up time of trainlab as whole processes (issue 18); prints medians and the machine.

    python benchmarks/startup.py [--repeat 7] [--src OTHER/src ...]

With `--src` (repeatable) the same cases run for each source tree too (e.g. an older commit's
`git archive` under /tmp), interleaved with this checkout's, so a before/after comparison shares the
machine's load.

Each measurement is a fresh interpreter started from here, so it includes Python's own start-up
(`python -c pass` is printed as the floor). Measured:

- `trainlab --help`, `trainlab list models` and `python -c "import trainlab"` (the CLI through
  `python -m trainlab`, this checkout's src first on PYTHONPATH);
- `first step`: the time from starting `trainlab.train(...)`'s process to its first optimizer step,
  on the tiny `synthetic:linear` recipe (a callback prints the wall clock at the first `on_step`
  with `train.log_every: 1`, then the process exits); this is the part of a `trainlab train` start-up
  that the imports and the build stage decide.

The commands run interleaved (one of each per round), so a load that comes and goes on a shared
machine spreads over all of them. Not part of the tests: no test times itself.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FIRST_STEP = """
import os, sys, time
import trainlab
from trainlab.events import Callback

class First(Callback):
    def on_step(self, trainer, logs):
        print(repr(time.time()), flush=True)
        os._exit(0)  # the first step is what is measured; skip the rest of the run

recipe = {"name": "startup", "seed": 0, "data": {"source": "synthetic:linear", "batch_size": 64},
          "model": {"name": "linear"}, "loss": {"name": "mse"}, "optim": {"name": "sgd", "lr": 0.1},
          "train": {"epochs": 1, "log_every": 1}}
trainlab.train(recipe, run_dir=sys.argv[1], progress=False, callbacks=[First()])
"""


def cpu() -> str:
    """The CPU model, core count and the flags that decide CPU speed (from /proc/cpuinfo)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    shown = sorted(f for f in flags if f.startswith(("avx", "amx")) or f in ("fma", "f16c"))
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(shown) or 'n/a'}"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def first_step(env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", FIRST_STEP, str(Path(tmp) / "run")], env=env, check=True,
                             capture_output=True, text=True).stdout
        return float(out.strip().splitlines()[-1]) - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--src", action="append", default=[], help="another source tree to time beside this one")
    args = p.parse_args()
    py = [sys.executable]
    cases = {"python -c pass": lambda env: timed(py + ["-c", "pass"], env)}
    cases_src = {
        "trainlab --help": lambda env: timed(py + ["-m", "trainlab", "--help"], env),
        "trainlab list models": lambda env: timed(py + ["-m", "trainlab", "list", "models"], env),
        'python -c "import trainlab"': lambda env: timed(py + ["-c", "import trainlab"], env),
        "first step (synthetic:linear)": first_step,
    }
    runs = [(name, run, {}) for name, run in cases.items()]
    for src in [str(ROOT / "src"), *args.src]:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
        tag = "" if src == str(ROOT / "src") else f"  [{src}]"
        runs += [(name + tag, run, env) for name, run in cases_src.items()]
    times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for _ in range(args.repeat):
        for name, run, env in runs:
            times[name].append(run(env or dict(os.environ)))
    print(f"CPU: {cpu()}")
    print(f"Python {platform.python_version()}, {args.repeat} runs each, interleaved; medians (min-max), seconds")
    for name, ts in times.items():
        print(f"  {name:48s} {statistics.median(ts):6.2f}  ({min(ts):.2f}-{max(ts):.2f})")


if __name__ == "__main__":
    main()
