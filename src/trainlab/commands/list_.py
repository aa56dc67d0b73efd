"""`trainlab list`: the entries of every registry in the catalogue (or of one kind)."""
from __future__ import annotations

import argparse

from .. import catalog
from ._console import console

NAME = "list"
HELP = f"list registered {', '.join(catalog.kinds())}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", choices=catalog.kinds())


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    listed = catalog.rows()  # the catalogue snapshot: no torch import once it is written
    for kind in [args.kind] if args.kind else list(listed):
        table = Table(title=kind, show_header=True, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("description")
        table.add_column("options")
        for e in listed[kind]:
            alias = f" ({', '.join(e['aliases'])})" if e["aliases"] else ""
            table.add_row(e["name"] + alias, e["description"], ", ".join(e["options"]))
        console.print(table)
    return 0
