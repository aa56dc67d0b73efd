"""`trainlab tune`: an Optuna study over the recipe's `search:` space, or `--show` a study."""
from __future__ import annotations

import argparse

from ..errors import TrainlabError
from ._console import console

NAME = "tune"
HELP = "search hyperparameters with Optuna over the recipe's `search:` space"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="recipe YAML file with a search: section (or pass --space)")
    p.add_argument("--trials", type=int, default=20, help="finished trials the study should reach (default 20)")
    p.add_argument("--space", metavar="FILE", help="YAML search space to use instead of the recipe's search:")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field of the base recipe (repeatable)")
    p.add_argument("--run-dir", help="study folder (default <output.root>/tune/<study>)")
    p.add_argument("--workers", type=int, default=1, help="trial processes on this machine (default 1)")
    p.add_argument("--timeout", type=float, help="start no new trial after this many seconds")
    p.add_argument("--study", help="study name (default: the recipe's name)")
    p.add_argument("--storage", help="SQLAlchemy URL (default: SQLite file study.db in the study folder)")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random", "grid", "cmaes"])
    p.add_argument("--pruner", default="median", choices=["median", "asha", "hyperband", "none"])
    p.add_argument("--objective", default="auto", help="per-epoch metric to optimize, e.g. val.accuracy "
                                                       "(default: val.accuracy or val.loss by task)")
    p.add_argument("--direction", default="auto", choices=["auto", "maximize", "minimize"])
    p.add_argument("--heartbeat", type=int, default=30,
                   help="seconds between a running trial's heartbeats; a trial silent for twice this is re-run")
    p.add_argument("--show", metavar="STUDY", help="print a study (folder or name) from its storage and exit")


def run(args: argparse.Namespace) -> int:
    if not args.show and not args.recipe:  # before the imports below (optuna, torch): a usage error answers at once
        raise TrainlabError("tune: give a RECIPE to tune, or --show STUDY")
    from ..tune import show, tune
    from ..tune.report import print_study

    if args.show:
        print_study(console, *show(args.show, args.storage, args.run_dir))
        return 0
    res = tune(args.recipe, args.trials, args.space, args.set, args.run_dir, args.workers, args.timeout,
               args.study, args.storage, args.sampler, args.pruner, args.objective, args.direction,
               args.heartbeat, say=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True))
    print_study(console, *show(str(res.folder), args.storage), outputs=res.outputs)
    if res.status == "interrupted":
        console.print(f"interrupted: {res.finished} finished trials kept; run the same command again to continue")
        return 130
    return 0
