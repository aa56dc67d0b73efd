"""`trainlab runs`: the table of run directories under a folder, or a few runs side by side."""
from __future__ import annotations

import argparse
import json

from ._console import console, wide_console

NAME = "runs"
HELP = "table of the runs under ROOT; --compare RUN_A RUN_B ... side by side"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", nargs="?", default="runs", help="folder holding run directories (default: runs)")
    p.add_argument("--compare", nargs="+", metavar="RUN",
                   help="compare these runs (paths, or names under ROOT): recipe differences, final "
                        "metrics and one overlay plot of their validation curves")
    p.add_argument("--plot", help="where --compare writes its plot (default: compare.png beside the first run)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from ..track import runs as index
    from ..track.tables import runs_table, side_by_side

    if args.compare:
        c = index.compare(args.compare, args.root, args.plot)
        if args.json:
            print(json.dumps(c, indent=2, default=str))
            return 0
        diff = c["differences"]
        console.print(side_by_side("recipe differences", "key", c["runs"], diff) if diff
                      else "the recipes are identical")
        console.print(side_by_side("final metrics", "metric", c["runs"], c["metrics"], numbers=True))
        console.print(f"validation curves: {escape(str(c['plot']))}")
        return 0
    rows = [index.summary_row(r) for r in index.find_runs(args.root)]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    wide_console(150).print(runs_table(rows, f"runs in {args.root}") if rows
                            else f"no run directories under {escape(args.root)}")
    for r in rows:  # why checkpoints/best is that epoch, where a tie decided it
        if r.get("best_reason") and "tied" in r["best_reason"]:
            console.print(f"best of {r['run']}: {r['best_reason']}", markup=False, highlight=False)
    if any(r["stale"] for r in rows):
        console.print("† env.json says running, but its process no longer exists (killed?)")
    for r in rows:
        if r.get("damaged"):  # plain text: file names and parser messages are not markup
            console.print(f"damaged: {r['run']}: {r['damaged']}", markup=False, highlight=False)
    return 0
