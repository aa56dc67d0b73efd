"""The `trainlab` command: thin; parses arguments and calls the Python API."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from rich.console import Console
from rich.table import Table

from .errors import TrainlabError

console = Console()
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(fn):
    COMMANDS[fn.__name__.removeprefix("cmd_").replace("_", "-")] = fn
    return fn


def _registries():
    from .data import SOURCES
    from .losses import LOSSES
    from .models import MODELS
    from .optim import OPTIMIZERS, SCHEDULES

    return {"sources": SOURCES, "models": MODELS, "losses": LOSSES, "optimizers": OPTIMIZERS,
            "schedules": SCHEDULES}


@command
def cmd_train(args) -> int:
    from .api import train

    run = train(args.recipe, args.set, args.run_dir)
    m = run.metrics
    shown = ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float))
    if run.stop_reason:
        console.print(run.stop_reason)
    console.print(f"test ({m['checkpoint']} checkpoint, epoch {m['epoch']}): {shown}")
    console.print(f"run directory: {run.path}")
    return 0


@command
def cmd_evaluate(args) -> int:
    from .api import evaluate

    m = evaluate(args.run_dir, args.split, args.checkpoint)
    table = Table(title=f"{args.split} split, {args.checkpoint} checkpoint (epoch {m['epoch']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in m.items():
        if isinstance(v, (int, float)) and k not in ("epoch",):
            table.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
    console.print(table)
    console.print(f"wrote {args.run_dir}/eval/{args.split}.json")
    return 0


@command
def cmd_list(args) -> int:
    regs = _registries()
    kinds = [args.kind] if args.kind else list(regs)
    for kind in kinds:
        reg = regs[kind]
        table = Table(title=kind, show_header=True, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("description")
        table.add_column("options")
        for e in reg.entries():
            alias = f" ({', '.join(e.aliases)})" if e.aliases else ""
            table.add_row(e.name + alias, e.description, ", ".join(reg.options(e.name)))
        console.print(table)
    return 0


@command
def cmd_tune(args) -> int:
    from .tune import show, tune
    from .tune.report import print_study

    if args.show:
        print_study(console, *show(args.show, args.storage, args.run_dir))
        return 0
    if not args.recipe:
        raise TrainlabError("tune: give a RECIPE to tune, or --show STUDY")
    res = tune(args.recipe, args.trials, args.space, args.set, args.run_dir, args.workers, args.timeout,
               args.study, args.storage, args.sampler, args.pruner, args.objective, args.direction,
               args.heartbeat, say=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True))
    print_study(console, *show(str(res.folder), args.storage), outputs=res.outputs)
    if res.status == "interrupted":
        console.print(f"interrupted: {res.finished} finished trials kept; run the same command again to continue")
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainlab", description="A deep-learning training and optimization lab.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a recipe; writes a run directory")
    t.add_argument("recipe", help="recipe YAML file")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set optim.lr=0.01 (repeatable)")
    t.add_argument("--run-dir", help="write the run here instead of <output.root>/<name>-<time>")

    e = sub.add_parser("evaluate", help="evaluate a run's checkpoint on a split; writes eval/<split>.json")
    e.add_argument("run_dir", help="run directory")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--checkpoint", default="best", choices=["best", "last"])

    tu = sub.add_parser("tune", help="search hyperparameters with Optuna over the recipe's `search:` space")
    tu.add_argument("recipe", nargs="?", help="recipe YAML file with a search: section (or pass --space)")
    tu.add_argument("--trials", type=int, default=20, help="finished trials the study should reach (default 20)")
    tu.add_argument("--space", metavar="FILE", help="YAML search space to use instead of the recipe's search:")
    tu.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe field of the base recipe (repeatable)")
    tu.add_argument("--run-dir", help="study folder (default <output.root>/tune/<study>)")
    tu.add_argument("--workers", type=int, default=1, help="trial processes on this machine (default 1)")
    tu.add_argument("--timeout", type=float, help="start no new trial after this many seconds")
    tu.add_argument("--study", help="study name (default: the recipe's name)")
    tu.add_argument("--storage", help="SQLAlchemy URL (default: SQLite file study.db in the study folder)")
    tu.add_argument("--sampler", default="tpe", choices=["tpe", "random", "grid", "cmaes"])
    tu.add_argument("--pruner", default="median", choices=["median", "asha", "hyperband", "none"])
    tu.add_argument("--objective", default="auto", help="per-epoch metric to optimize, e.g. val.accuracy "
                                                        "(default: val.accuracy or val.loss by task)")
    tu.add_argument("--direction", default="auto", choices=["auto", "maximize", "minimize"])
    tu.add_argument("--heartbeat", type=int, default=30,
                    help="seconds between a running trial's heartbeats; a trial silent for twice this is re-run")
    tu.add_argument("--show", metavar="STUDY", help="print a study (folder or name) from its storage and exit")

    ls = sub.add_parser("list", help="list registered sources, models, losses, optimizers, schedules")
    ls.add_argument("kind", nargs="?", choices=["sources", "models", "losses", "optimizers", "schedules"])
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except TrainlabError as e:
        # one line, exit 2: the message names the recipe key or the file
        print(f"trainlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trainlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
