"""`trainlab data`: what a recipe's data section resolves to, and a sheet of augmented samples."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._console import console

NAME = "data"
HELP = ("what a recipe's data section resolves to: splits, classes, statistics, "
        "and augmented samples in plots/augment.png")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--out", help="folder for plots/augment.png (default <output.root>/<name>-data)")


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from ..describe import describe, print_summary, write_augment_png
    from ..recipe import load_recipe

    recipe = load_recipe(args.recipe, args.set)
    bundle, summary = describe(recipe)
    print_summary(console, summary)
    out = Path(args.out) if args.out else Path(recipe.output.root) / f"{recipe.name}-data"
    png = write_augment_png(bundle, recipe, out)
    console.print(f"wrote {escape(str(png))}" if png else "no augmented sample written (no image augmentation in the recipe)",
                  highlight=False)
    return 0
