"""`trainlab compare`: optimizers, each at its best LR, over seeds; a table, plots and report.html."""
from __future__ import annotations

import argparse

from ._console import console, wide_console

NAME = "compare"
HELP = ("compare optimizers, each at its best LR, over seeds: time to target, "
        "table, convergence plots, report.html")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML file (the workload: data, model, loss, schedule, budget)")
    p.add_argument("--optimizers", default="sgd,adam,adamw,rmsprop,adagrad,adadelta,adafactor,muon",
                   help="comma-separated optimizer names (default: %(default)s)")
    p.add_argument("--seeds", type=int, help="seeds per optimizer: recipe seed, +1, ... (default 3; 1 with --quick)")
    p.add_argument("--target", metavar="METRIC=VALUE",
                   help="per-epoch target, e.g. val.accuracy=0.88 or val.loss=0.01 (min/max from the metric)")
    p.add_argument("--lr-search", default="grid", choices=["grid", "lr-find", "none"],
                   help="how each optimizer's LR is found: a short log-grid search, the LR range test, or none")
    p.add_argument("--budget-epochs", type=int, help="epochs per run (default: the recipe's train.epochs)")
    p.add_argument("--workers", type=int, default=1, help="runs in parallel processes (default 1)")
    p.add_argument("--eval-every", type=int, metavar="STEPS",
                   help="check the target on the validation split every STEPS optimizer steps of the final runs "
                        "(default: about 10 checks per epoch; 0: epoch ends only)")
    p.add_argument("--out", help="output folder (default <output.root>/compare/<name>-<time>)")
    p.add_argument("--quick", action="store_true",
                   help="demo mode: 1 seed, at most 3 epochs, 5000 training samples, 3-point LR grids")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field of the base recipe (repeatable)")


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from ..compare import compare
    from ..compare.output import str_target
    from ..compare.table import rich_table

    res = compare(args.recipe, args.optimizers, args.seeds, args.target, args.lr_search, args.budget_epochs,
                  args.workers, args.out, args.quick, args.set, args.eval_every,
                  say=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True))
    s = res.data["settings"]
    wide_console(160).print(rich_table(res.rows, s["metric"], str_target(s["target"]),
                                       f"{res.data['recipe']}: {len(s['seeds'])} seed(s), {s['budget_epochs']} epochs"))
    console.print(f"wrote {escape(str(res.folder))}/compare.json, table.md, plots/ and report.html")
    return 0
