"""`trainlab predict RUN_DIR INPUT...`: a trained run's predictions on raw files (images and folders,
CSV/TSV/Parquet tables, text lines, .npy arrays), as a table, JSON or CSV."""
from __future__ import annotations

import argparse

from . import _trust
from ._console import console, wide_console

NAME = "predict"
HELP = ("predict with a run's model on raw files: images or folders, CSV/TSV/Parquet rows, text lines, .npy "
        "arrays; prints classes and probabilities or values in original units")

FORMATS = ("table", "json", "csv")
EXTENSIONS = {"table": "txt", "json": "json", "csv": "csv"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image files (.png/.jpg/.jpeg) or folders of them for an image run; .csv/.tsv/.parquet "
                        "files with the training columns for a table run; .txt files (one text a line) for a text "
                        "run; .npy arrays of the raw input shape (N, ...) for any run")
    p.add_argument("--text", action="append", default=[], metavar="TEXT",
                   help="a text to classify (text runs; repeat for several)")
    p.add_argument("--format", default="table", choices=FORMATS,
                   help="table (default), json (the model's metadata and one object per input) or csv "
                        "(one row per input)")
    p.add_argument("--top-k", type=int, default=3, metavar="K",
                   help="the K most probable classes per input (default 3; table and json)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                   help="torch (eager PyTorch) or onnx (ONNX Runtime on the run's export/<checkpoint>.onnx, "
                        "exported first if missing)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--out", metavar="FILE", help="write the predictions there in --format instead of printing them")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    _trust.add_argument(p)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from rich.markup import escape

    from ..deploy.answers import rows
    from ..deploy.inputs import read_inputs
    from ..deploy.predictor import Predictor
    from ..errors import RecipeError
    from ..io import atomic_write

    if args.top_k < 1:
        raise RecipeError(f"--top-k: expected a positive number of classes, got {args.top_k}")
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise RecipeError(f"--out {args.out}: is a folder; give a file name such as {out / ('predictions.' + EXTENSIONS[args.format])}")
    if out is not None and out.exists() and not args.force:  # checked before any work: nothing is overwritten
        raise RecipeError(f"--out {args.out}: the file exists; choose another name or add --force to replace it")
    predictor = Predictor(args.run_dir, args.backend, args.checkpoint, trust_code=args.trust_code)
    inputs = read_inputs(args.inputs, predictor.loaded, args.text)
    x = predictor.check(inputs.x, "the inputs")
    outputs = predictor(x)
    answers = [{"input": name, **row} for name, row in zip(inputs.names, rows(outputs, predictor.spec, args.top_k))]
    for note in inputs.notes:  # on stderr: stdout holds only the predictions (json, csv)
        print(f"trainlab: predict: {note}", file=sys.stderr, flush=True)

    if args.format == "json":
        text = _json(predictor.metadata(), answers)
    elif args.format == "csv":
        text = _csv(predictor.spec, outputs, answers)
    else:
        table = _table(predictor, answers, args.top_k)
        width = max(len(a["input"]) for a in answers) + 40 + 20 * min(args.top_k, 5)
        if out is None:  # a pipe or a log gets the whole table, never paths folded at 80 columns
            wide_console(width).print(table)
            return 0
        import io

        from rich.console import Console

        buf = Console(record=True, width=width, file=io.StringIO())  # the table as plain text, for the file
        buf.print(table)
        text = buf.export_text()
    if out is None:
        sys.stdout.write(text)
        return 0
    atomic_write(out, text)
    n = len(answers)
    console.print(f"wrote {n} prediction{'s' if n != 1 else ''} to {escape(str(out))}", highlight=False)
    return 0


def _json(metadata: dict, answers: list[dict]) -> str:
    import json

    return json.dumps({"model": metadata, "predictions": answers}, indent=1, ensure_ascii=False) + "\n"


def _csv(spec: dict, outputs: dict, answers: list[dict]) -> str:
    import csv
    import io

    from ..deploy.answers import columns, flat

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["input", *columns(spec, outputs)])
    for a in answers:
        w.writerow([a["input"], *flat(a)])
    return buf.getvalue()


def _table(predictor, answers: list[dict], top_k: int):
    from rich.markup import escape
    from rich.table import Table

    meta = predictor.loaded
    title = (f"{escape(meta.recipe.name)}: {len(answers)} prediction{'s' if len(answers) != 1 else ''} "
             f"({meta.checkpoint} checkpoint, epoch {meta.epoch}, {predictor.backend})")
    table = Table(title=title, title_justify="left", min_width=len(title))  # the title on one line
    table.add_column("input", overflow="fold")
    task = predictor.spec["task"]
    if task == "regression":
        table.add_column("value", justify="right")
        for a in answers:
            v = a["value"]
            table.add_row(escape(a["input"]), ", ".join(f"{x:.6g}" for x in (v if isinstance(v, list) else [v])))
        return table
    if task == "multilabel":
        table.add_column("labels (p > 0.5)")
        for a in answers:
            table.add_row(escape(a["input"]), escape(", ".join(f"{lab['label']} {lab['probability']:.3f}"
                                                               for lab in a["labels"]) or "none"))
        return table
    table.add_column("prediction")
    table.add_column("probability", justify="right")
    k = min(top_k, len(answers[0]["probabilities"])) if answers else top_k
    if k > 1:
        table.add_column(f"top {k}")
    for a in answers:
        cells = [escape(a["input"]), escape(a["prediction"]), f"{a['probability']:.4f}"]
        if k > 1:
            cells.append(escape(", ".join(f"{t['class']} {t['probability']:.3f}" for t in a["top_k"])))
        table.add_row(*cells)
    return table
