"""`trainlab train`: train a recipe (or resume a run) and print its test metrics."""
from __future__ import annotations

import argparse

from ..errors import TrainlabError
from . import _trust
from ._console import console

NAME = "train"
HELP = "train a recipe; writes a run directory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="recipe YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set optim.lr=0.01 (repeatable)")
    p.add_argument("--run-dir", help="write the run here instead of <output.root>/<name>-<time>")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted or crashed run from its newest complete checkpoint")
    _trust.add_argument(p)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    # the arguments are checked before trainlab.api (and torch) is imported: a usage error answers at once
    if args.resume and (args.recipe or args.set or args.run_dir):
        raise TrainlabError("train --resume RUN_DIR continues a run with its own recipe: "
                            "give no recipe, --set or --run-dir with it")
    if not args.resume and not args.recipe:
        raise TrainlabError("train: give a recipe file, or --resume RUN_DIR")
    from ..api import resume, train

    if args.resume:
        result = resume(args.resume, trust_code=args.trust_code)
    else:
        result = train(args.recipe, args.set, args.run_dir)
    m = result.metrics
    from ..metrics import HEADLINE

    shown = ", ".join(f"{k} {m[k]:.4f}" for k in HEADLINE if isinstance(m.get(k), float))
    if result.stop_reason:
        console.print(escape(result.stop_reason))  # names the monitored metric
    console.print(f"test ({m['checkpoint']} checkpoint, epoch {m['epoch']}): {shown}")
    from ..track.evaluation import baseline_line

    line = baseline_line(m)
    if line:
        console.print(escape(line), highlight=False)
    env = result.dir.read_json("env.json")
    if (env.get("best") or {}).get("reason") and m["checkpoint"] == "best":
        console.print(f"best: {escape(env['best']['reason'])}", highlight=False)
    from ..perf import summary_line  # model FLOP utilization and the thread count (issue 9)

    mfu_line = summary_line(result.history, env.get("threads"), env.get("precision"))
    if mfu_line:
        console.print(mfu_line, highlight=False)
    console.print(f"run directory: {escape(str(result.path))}")
    return 0
