"""`trainlab summary`: a recipe's model as a layer table, with parameter counts, FLOPs and memory."""
from __future__ import annotations

import argparse
import json

from . import _trust
from ._console import console

NAME = "summary"
HELP = "layer table, parameter counts, FLOPs and memory of a recipe's model or a trained run's"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML file, or a run directory (its model, without its data)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--depth", type=int, default=2, help="show modules nested up to this depth (default 2)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _trust.add_argument(p)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from pathlib import Path

    from ..errors import TrainlabError
    from ..recipe import load_recipe
    from ..summary import human, human_bytes, summarize

    if Path(args.recipe).is_dir():  # a run directory: its trained model, without its data
        if args.set:
            raise TrainlabError("summary RUN_DIR shows the run as trained: give no --set with it")
        s = summarize(run_dir=args.recipe, max_depth=args.depth, trust_code=args.trust_code)
    else:
        s = summarize(load_recipe(args.recipe, args.set), max_depth=args.depth)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    table = Table(title=f"{escape(s['model'])} on inputs {tuple(s['input_shape'])} → {s['outputs']} outputs",
                  title_justify="left")
    for col, just in (("layer", "left"), ("type", "left"), ("output shape", "left"), ("params", "right"),
                      ("FLOPs/sample", "right")):
        table.add_column(col, justify=just)
    for r in s["layers"]:
        shape = ("(" + ", ".join(map(str, r["output_shape"])) + ")" if isinstance(r["output_shape"], list)
                 else r["output_shape"])
        name = "  " * (r["depth"] - 1) + r["name"].split(".")[-1] if r["depth"] > 1 else r["name"]
        table.add_row(escape(name), escape(r["type"]),  # a custom model's own module and class names
                      escape(str(shape)), f"{r['params']:,}", human(r["flops_forward"]) if r["flops_forward"] else "")
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
