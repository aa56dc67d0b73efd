"""`trainlab evaluate`: evaluate a run's checkpoint on a split; writes eval/<split>.json."""
from __future__ import annotations

import argparse

from . import _trust
from ._console import console

NAME = "evaluate"
HELP = "evaluate a run's checkpoint on a split; writes eval/<split>.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    _trust.add_argument(p)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from ..api import evaluate
    from ..track.tables import metrics_table, per_class_table, per_label_table

    m = evaluate(args.run_dir, args.split, args.checkpoint, trust_code=args.trust_code)
    console.print(metrics_table(m, f"{args.split} split, {args.checkpoint} checkpoint (epoch {m['epoch']}), "
                                   f"{m['samples']} samples"))
    if m.get("per_class"):
        console.print(per_class_table(m["per_class"]))
    if m.get("per_label"):
        console.print(per_label_table(m["per_label"]))
    console.print(f"wrote {escape(args.run_dir)}/eval/{args.split}.json")
    return 0
