"""`trainlab compress`: prune (quantize, distill) a trained run into a new child run directory, and
compare a parent with its compressed children (size, FLOPs, latency, accuracy)."""
from __future__ import annotations

import argparse

from ._console import console

NAME = "compress"
HELP = "compress a trained run into a new run (prune, quantize, distill); --compare: parent vs children"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="with --method: the run to compress; without: --compare PARENT [CHILD ...] "
                        "(default children: the runs beside PARENT made from it)")
    p.add_argument("--method", choices=["prune", "quantize", "distill"], help="compression method")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="the parent's checkpoint")
    p.add_argument("--out", help="the child run directory (with --method) or the comparison's folder")
    p.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (per round); 0 = none")
    p.add_argument("--lr-scale", type=float, default=1.0, help="fine-tuning LR = the parent's times this")
    g = p.add_argument_group("prune")
    g.add_argument("--sparsity", type=float, help="unstructured: target share of zero weights, in (0, 1)")
    g.add_argument("--scope", default="global", choices=["global", "layer"],
                   help="unstructured: one magnitude threshold over all layers, or the sparsity in each")
    g.add_argument("--steps", type=int, default=1, help="unstructured: rounds of prune + fine-tune (cubic schedule)")
    g.add_argument("--structured", action="store_true",
                   help="remove whole units (mlp) / channels (convnet) physically")
    g.add_argument("--amount", type=float, help="structured: share of units/channels per layer to remove, in (0, 1)")
    g.add_argument("--norm", default="l1", choices=["l1", "l2"], help="structured: rank units by this norm")
    g = p.add_argument_group("quantize")
    g.add_argument("--scheme", choices=["int8_dynamic", "int8_weight_only", "int8_static"],
                   help="int8_dynamic / int8_weight_only: torchao on Linear layers; int8_static: conv nets, an "
                        "int8 ONNX file through ONNX Runtime (export/best.int8.onnx in the child)")
    g.add_argument("--calibration", type=int, default=256, help="int8_static: training samples to calibrate on")
    g = p.add_argument_group("distill (RUN_DIR is the teacher)")
    g.add_argument("--student", metavar="RECIPE", help="the student's recipe (same data as the teacher)")
    g.add_argument("--alpha", type=float, default=0.5, help="weight of the KL term to the teacher (0..1)")
    g.add_argument("--temperature", type=float, default=4.0, help="softening temperature of both outputs")
    p.add_argument("--compare", action="store_true", help="print and write the comparison table and plot")
    p.add_argument("--latency-runs", type=int, default=50,
                   help="timed forward passes per batch size in the comparison (median); 0 = no latency")


def _options(args: argparse.Namespace) -> dict:
    if args.method == "quantize":
        return {"scheme": args.scheme, "calibration": args.calibration}
    if args.method == "distill":
        return {"student": args.student, "alpha": args.alpha, "temperature": args.temperature}
    if args.structured:
        opts = {"structured": True, "amount": args.amount, "norm": args.norm}
    else:
        opts = {"sparsity": args.sparsity, "scope": args.scope, "steps": args.steps}
    return {**opts, "epochs": args.epochs, "lr_scale": args.lr_scale}


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from ..errors import RecipeError

    child = None
    if args.method is not None:
        if len(args.runs) != 1:
            raise RecipeError(f"--method {args.method}: give one run directory to compress, got {len(args.runs)}")
        from ..api import load_run
        from ..compress import method

        fn = method(args.method)  # an unknown or unwired method fails before anything is read
        parent = load_run(args.runs[0], args.checkpoint, device="cpu")
        result = fn(parent, _options(args), run_dir=args.out, progress=True)
        child = result.path
        console.print(f"wrote {escape(str(child))} (from {escape(str(parent.path))})")
    elif not args.compare:
        raise RecipeError("trainlab compress: give --method prune|quantize|distill, or --compare PARENT [CHILD ...]")
    if args.compare:
        from ..compress.report import compare, table

        if child is not None:
            rows, out = compare(args.runs[0], [child], None, args.checkpoint, args.latency_runs)
        else:
            rows, out = compare(args.runs[0], args.runs[1:], args.out, args.checkpoint, args.latency_runs)
        console.print(table(rows))
        console.print(f"wrote {escape(str(out))}/compare.json, compare.md, size_accuracy.png")
    return 0
