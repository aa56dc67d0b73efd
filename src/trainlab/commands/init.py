"""`trainlab init DATA`: inspect a table, an image folder, a text table or a text corpus and write a
commented starter recipe that trains straight away."""
from __future__ import annotations

import argparse

from ._console import console

NAME = "init"
HELP = ("inspect your data (CSV/TSV/Parquet table, text CSV/JSONL, image folder, text files) and write "
        "a commented starter recipe, printing what it inferred and why")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="a CSV/TSV/Parquet or JSONL file, a .txt file, or a folder (images in class "
                                "subfolders, or text files)")
    p.add_argument("--target", metavar="COL", help="the column (or JSONL key) to predict; default: one named "
                                                   "like a target (label, target, class, ...), else the last")
    p.add_argument("--out", default="recipe.yaml", help="where to write the recipe (default recipe.yaml; - prints it)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    from ..errors import RecipeError
    from ..io import atomic_write
    from ..recipe import load_recipe
    from ..starter import inspect_data

    out = None if args.out == "-" else Path(args.out)
    if out is not None and out.exists() and not args.force:
        raise RecipeError(f"--out {args.out}: the file exists; choose another name or add --force to replace it")
    if out is not None and out.is_dir():
        raise RecipeError(f"--out {args.out}: is a folder; give a file name such as {out / 'recipe.yaml'}")
    starter = inspect_data(args.data, args.target)
    text = starter.yaml(args.out if out is not None else "recipe.yaml")
    _validate(text, load_recipe)  # what init writes always loads: checked before anything is written
    if out is None:
        print(text, end="")
        return 0
    table = Table(title=f"trainlab init: {escape(args.data)}", title_justify="left")
    for col in ("", "inferred", "why"):
        table.add_column(col)
    for what, value, why in starter.reasons:
        table.add_row(what, escape(value), escape(why))
    console.print(table)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True)
    atomic_write(out, text)
    console.print(f"wrote {escape(str(out))}; train it with: trainlab train {escape(str(out))}", highlight=False)
    return 0


def _validate(text: str, load_recipe) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(suffix=".yaml", prefix="trainlab-init-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        load_recipe(tmp)
    finally:
        os.unlink(tmp)
