"""`trainlab lr-find`: the LR range test; suggests a learning rate and draws plots/lr_find.png."""
from __future__ import annotations

import argparse

from ._console import console

NAME = "lr-find"
HELP = "LR range test: suggests a learning rate, writes plots/lr_find.png"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set optim.name=sgd (repeatable)")
    p.add_argument("--run-dir",
                   help="write lr_find.json and plots/ here instead of <output.root>/<name>-lr-find-<time>")


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from ..lr_find import lr_find

    res, path = lr_find(args.recipe, args.set, args.run_dir)
    console.print(escape(res.stopped))
    for name, lr in (("steepest descent", res.steepest), ("minimum / 10", res.min_div10)):
        console.print(f"suggested lr ({name}): {lr:.3g}" if lr is not None else f"no {name} suggestion")
    console.print(f"wrote {escape(str(path))}/lr_find.json and {escape(str(path))}/plots/lr_find.png")
    return 0
