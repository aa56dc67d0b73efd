"""The compression comparison (`trainlab compress ... --compare`): a parent run and its compressed
children side by side: parameters, non-zero parameters, the size of model.safetensors, forward
FLOPs per sample (`trainlab summary`'s counter), eager-PyTorch latency at batch 1 and 256 (median
of many runs, threads reported), test accuracy and its change against the parent. Written as
compare.json, compare.md and size_accuracy.png (file size against accuracy) into one folder.
"""
from __future__ import annotations

import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write

BATCHES = (1, 256)


def children_of(parent: str | Path) -> list[Path]:
    """The compressed runs beside `parent` whose recipe names it as their parent, oldest first."""
    from .child import parent_of

    parent = Path(parent).resolve()
    found = []
    for p in sorted(parent.parent.iterdir()):
        if p != parent and (p / "recipe.yaml").is_file():
            try:
                up = parent_of(p)
            except Exception:  # an unreadable recipe is not one of ours
                continue
            if up is not None and up.resolve() == parent:
                found.append(p)
    return found


@torch.no_grad()
def latency_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median milliseconds of `repeats` forward passes on `x` (after 3 warm-up passes), eager."""
    for _ in range(3):
        model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _test_metric(run_dir: Path, checkpoint: str) -> float | None:
    """The run's test accuracy: eval/test.json (written at the end of training), else evaluated now."""
    path = run_dir / "eval" / "test.json"
    m = json.loads(path.read_text()) if path.is_file() else None
    if m is None or m.get("checkpoint") != checkpoint:
        from ..api import evaluate

        m = evaluate(run_dir, "test", checkpoint)
    value = m.get("accuracy")
    return float(value) if value is not None else None


def measure(run_dir: str | Path, checkpoint: str = "best", repeats: int = 30) -> dict[str, Any]:
    """One row of the comparison for `run_dir`; `repeats` 0 measures no latency."""
    from ..api import load_run
    from ..summary import summarize

    run = load_run(run_dir, checkpoint, device="cpu")
    params = list(run.model.parameters())
    row: dict[str, Any] = {
        "run": str(run.path), "name": run.path.name, "method": (run.recipe.compress or {}).get("method", "-"),
        "params": sum(p.numel() for p in params),
        "nonzero_params": sum(int((p != 0).sum()) for p in params),
        "file_bytes": (run.path / "checkpoints" / run.checkpoint / "model.safetensors").stat().st_size,
        "flops_per_sample": summarize(run_dir=run.path)["flops_forward_per_sample"],
        "test_accuracy": _test_metric(run.path, run.checkpoint),
        "threads": torch.get_num_threads(),
    }
    for b in BATCHES:
        x, _ = run.info.example_batch(b)
        if run.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        row[f"latency_ms_b{b}"] = latency_ms(run.model, x, repeats) if repeats else None
    return row


def compare(parent: str | Path, children: list[str | Path] | None = None, out: str | Path | None = None,
            checkpoint: str = "best", repeats: int = 30) -> tuple[list[dict[str, Any]], Path]:
    """Rows for the parent and each child (default: `children_of(parent)`), each with its change in
    accuracy, parameters and file size against the parent; written into `out` (default: the last
    child's compare/ folder) as compare.json, compare.md and size_accuracy.png. Returns (rows, out)."""
    children = [Path(c) for c in children] if children else children_of(parent)
    rows = [measure(parent, checkpoint, repeats)] + [measure(c, checkpoint, repeats) for c in children]
    base = rows[0]
    for r in rows:
        acc, ref = r["test_accuracy"], base["test_accuracy"]
        r["accuracy_change"] = acc - ref if acc is not None and ref is not None else None
        r["params_ratio"] = r["params"] / base["params"]
        r["flops_ratio"] = r["flops_per_sample"] / max(1, base["flops_per_sample"])
        r["file_ratio"] = r["file_bytes"] / base["file_bytes"]
    out = Path(out) if out is not None else (children[-1] if children else Path(parent)) / "compare"
    atomic_write(out / "compare.json", json.dumps({"parent": base["run"], "rows": rows}, indent=2))
    atomic_write(out / "compare.md", markdown(rows))
    atomic_write(out / "size_accuracy.png", plot(rows))
    return rows, out


COLUMNS = [("name", "run"), ("method", "method"), ("params", "params"), ("nonzero_params", "non-zero"),
           ("file_bytes", "file"), ("flops_per_sample", "FLOPs/sample"), ("latency_ms_b1", "ms @1"),
           ("latency_ms_b256", "ms @256"), ("test_accuracy", "test acc"), ("accuracy_change", "Δ acc")]


def cell(key: str, value: Any) -> str:
    from ..summary import human, human_bytes

    if value is None:
        return "-"
    if key == "file_bytes":
        return human_bytes(value)
    if key in ("params", "nonzero_params", "flops_per_sample"):
        return human(value)
    if key.startswith("latency"):
        return f"{value:.2f}"
    if key == "test_accuracy":
        return f"{value:.4f}"
    if key == "accuracy_change":
        return f"{value * 100:+.2f} pt"
    return str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(t for _, t in COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    body = "".join("| " + " | ".join(cell(k, r.get(k)) for k, _ in COLUMNS) + " |\n" for r in rows)
    return head + body + f"\nLatency: eager PyTorch, median, {rows[0]['threads']} threads.\n"


def table(rows: list[dict[str, Any]]):
    """The comparison as a rich Table."""
    from rich.table import Table

    t = Table(title=f"compression (latency: eager, median, {rows[0]['threads']} threads)")
    for _, title in COLUMNS:
        t.add_column(title, justify="left" if title in ("run", "method") else "right")
    for r in rows:
        t.add_row(*(cell(k, r.get(k)) for k, _ in COLUMNS))
    return t


def plot(rows: list[dict[str, Any]]) -> bytes:
    """PNG bytes: model.safetensors size against test accuracy, one labelled point per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        acc = r["test_accuracy"] if r["test_accuracy"] is not None else float("nan")
        ax.scatter(r["file_bytes"] / 1e6, acc)
        ax.annotate(r["name"], (r["file_bytes"] / 1e6, acc), fontsize=7)
    ax.set_xlabel("model.safetensors (MB)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
