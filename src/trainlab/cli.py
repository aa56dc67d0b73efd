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
            table.add_row(e.name + alias, e.description, ", ".join(reg.option_names(e.name)))
        console.print(table)
    return 0


@command
def cmd_summary(args) -> int:
    import json

    from .models.summary import human, human_bytes, summarize
    from .recipe import load_recipe

    s = summarize(load_recipe(args.recipe, args.set), max_depth=args.depth)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    table = Table(title=f"{s['model']} on inputs {tuple(s['input_shape'])} → {s['outputs']} outputs",
                  title_justify="left")
    for col, just in (("layer", "left"), ("type", "left"), ("output shape", "left"), ("params", "right"),
                      ("FLOPs/sample", "right")):
        table.add_column(col, justify=just)
    for r in s["layers"]:
        shape = "(" + ", ".join(map(str, r["output_shape"])) + ")" if isinstance(r["output_shape"], list) else r["output_shape"]
        table.add_row("  " * (r["depth"] - 1) + r["name"].split(".")[-1] if r["depth"] > 1 else r["name"], r["type"],
                      shape, f"{r['params']:,}", human(r["flops_forward"]) if r["flops_forward"] else "")
    console.print(table)
    m = s["memory_bytes"]
    console.print(f"parameters: {s['params_total']:,} total, {s['params_trainable']:,} trainable")
    console.print(f"FLOPs per sample: forward {human(s['flops_forward_per_sample'])} ({s['flops_forward_per_sample']:,}), "
                  f"training step {human(s['flops_train_step_per_sample'])} ({s['flops_train_step_per_sample']:,})")
    console.print(f"FLOPs per training step at batch size {s['batch_size']}: {human(s['flops_train_step'])}")
    console.print(f"memory: weights {human_bytes(m['weights'])}, buffers {human_bytes(m['buffers'])}, "
                  f"gradients {human_bytes(m['gradients'])}, optimizer state ({s['optimizer']}) "
                  f"{human_bytes(m['optimizer_state'])}, activations saved for backward ≈ "
                  f"{human_bytes(m['activations_per_batch'])} per batch")
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

    sm = sub.add_parser("summary", help="layer table, parameter counts, FLOPs and memory of a recipe's model")
    sm.add_argument("recipe", help="recipe YAML file")
    sm.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    sm.add_argument("--depth", type=int, default=2, help="show modules nested up to this depth (default 2)")
    sm.add_argument("--json", action="store_true", help="print the summary as JSON")

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
