"""`trainlab export`: a run's model, from raw inputs to answers, as one ONNX or torch.export file."""
from __future__ import annotations

import argparse

from . import _trust
from ._console import console

NAME = "export"
HELP = "export a run's model (raw inputs, preprocessing inside) to ONNX or torch.export, checked"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory")
    p.add_argument("--format", required=True, metavar="{onnx,pt2}", help="onnx (ONNX Runtime and friends) or pt2 (torch.export)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--out", default=None, metavar="FILE",
                   help="where to write (default <run>/export/<checkpoint>.onnx|.pt2); the suffix must match --format")
    _trust.add_argument(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.markup import escape

    from ..api import load_run
    from ..deploy.export import check_format, export

    out = Path(args.out) if args.out else None
    check_format(args.format, out)  # before loading anything
    loaded = load_run(args.run_dir, args.checkpoint, device="cpu", trust_code=args.trust_code)
    res = export(loaded, args.format, out)
    spec = res.spec["input"]
    shape = "(" + ", ".join(map(str, spec["shape"])) + ")"
    outputs = ", ".join(o["name"] for o in res.spec["outputs"])
    console.print(f"wrote {escape(str(res.path))} ({res.size / 1e6:.2f} MB, {res.format}, "
                  f"{loaded.checkpoint} checkpoint, epoch {loaded.epoch}) in {res.seconds:.1f} s", highlight=False)
    console.print(f"checked: max |Δ| {res.max_diff:.3g} against eager PyTorch on {res.samples} samples "
                  f"({escape(res.sample_source)}) and on one alone (allowed {res.allowed:.3g})", highlight=False)
    console.print(f"input: {spec['name']} {spec['dtype']} {shape}: {escape(spec['description'])}", highlight=False)
    console.print(f"outputs: {outputs}; preprocessing inside: {escape('; '.join(res.spec['preprocessing']) or 'none')}",
                  highlight=False)
    if res.format == "onnx":
        example = (f"import numpy as np, onnxruntime as ort\n"
                   f"s = ort.InferenceSession({str(res.path)!r}, providers=['CPUExecutionProvider'])\n"
                   f"{outputs} = s.run(None, {{'input': x.astype(np.{spec['dtype']})}})  # x: {shape}")
    else:
        example = (f"import torch\n"
                   f"m = torch.export.load({str(res.path)!r}).module()\n"
                   f"{outputs} = m(x)  # x: torch.{spec['dtype']} {shape}")
    console.print("call it:", highlight=False)
    console.print(escape(example), highlight=False)
    return 0
