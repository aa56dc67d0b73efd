"""`trainlab reference`: the recipe reference generated from the schema and the registries."""
from __future__ import annotations

import argparse

from ._console import console

NAME = "reference"
HELP = "print the recipe reference (markdown) generated from the schema"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--write", metavar="FILE", help="replace the reference block in FILE (e.g. README.md)")


def run(args: argparse.Namespace) -> int:
    from ..docgen import reference, write_into

    if args.write:
        changed = write_into(args.write)
        console.print(f"{args.write}: {'updated' if changed else 'already up to date'}", markup=False)
    else:
        print(reference(), end="")
    return 0
