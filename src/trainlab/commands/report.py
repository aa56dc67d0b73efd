"""`trainlab report`: write a run's self-contained report.html."""
from __future__ import annotations

import argparse

from . import _trust
from ._console import console

NAME = "report"
HELP = "write the run's self-contained report.html"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory")
    p.add_argument("--output", help="write the page here instead of RUN_DIR/report.html")
    _trust.add_argument(p)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from ..api import report

    console.print(f"wrote {escape(str(report(args.run_dir, args.output, trust_code=args.trust_code)))}")
    return 0
