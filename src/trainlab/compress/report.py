"""The compression comparison (`trainlab compress ... --compare`): a parent run and its compressed
children side by side: parameters, non-zero parameters, the size of model.safetensors, forward
FLOPs per sample (`trainlab summary`'s counter), eager-PyTorch latency at batch 1 and 256 (median
of many runs, the models taking turns, threads reported), test accuracy and its change against the parent. Written as
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


BLOCK = 10  # timed passes of one model in a row


@torch.no_grad()
def latencies_ms(models: list[tuple[torch.nn.Module, torch.Tensor]], repeats: int) -> list[float]:
    """Median milliseconds of `repeats` eager forward passes of each (model, batch). The models
    take turns in blocks of BLOCK passes, each block after one untimed pass, so a load that comes
    and goes on a shared machine falls on all of them alike; passes of one model in a row keep its
    caches warm (alternating pass by pass made the smaller model of two look 3x slower here)."""
    times: list[list[float]] = [[] for _ in models]
    while len(times[0]) < repeats:
        for (model, x), t in zip(models, times):
            model(x)
            for _ in range(min(BLOCK, repeats - len(t))):
                t0 = time.perf_counter()
                model(x)
                t.append(time.perf_counter() - t0)
    return [statistics.median(t) * 1e3 for t in times]


def _test_metric(run_dir: Path, checkpoint: str) -> float | None:
    """The run's test accuracy: eval/test.json (written at the end of training), else evaluated now."""
    path = run_dir / "eval" / "test.json"
    m = json.loads(path.read_text()) if path.is_file() else None
    if m is None or m.get("checkpoint") != checkpoint:
        from ..api import evaluate

        m = evaluate(run_dir, "test", checkpoint)
    value = m.get("accuracy")
    return float(value) if value is not None else None


def measure(run_dir: str | Path, checkpoint: str = "best") -> tuple[dict[str, Any], Any]:
    """One row of the comparison for `run_dir` (without latency) and its loaded run."""
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
    return row, run


def _batch(run, n: int) -> torch.Tensor:
    x, _ = run.info.example_batch(n)
    return x.contiguous(memory_format=torch.channels_last) if run.channels_last else x


def compare(parent: str | Path, children: list[str | Path] | None = None, out: str | Path | None = None,
            checkpoint: str = "best", repeats: int = 30) -> tuple[list[dict[str, Any]], Path]:
    """Rows for the parent and each child (default: `children_of(parent)`), each with its change in
    accuracy, parameters and file size against the parent; written into `out` (default: the last
    child's compare/ folder) as compare.json, compare.md and size_accuracy.png. Returns (rows, out)."""
    children = [Path(c) for c in children] if children else children_of(parent)
    measured = [measure(r, checkpoint) for r in [parent, *children]]
    rows = [row for row, _ in measured]
    for b in BATCHES:
        ms = latencies_ms([(run.model, _batch(run, b)) for _, run in measured], repeats) if repeats else None
        for i, row in enumerate(rows):
            row[f"latency_ms_b{b}"] = ms[i] if ms else None
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
    """The comparison as a rich Table: one row per measure, one column per run (the parent first)."""
    from rich.table import Table

    t = Table(title=f"compression (latency: eager, median, {rows[0]['threads']} threads)",
              caption="  ".join(f"[{i}] {r['name']}" for i, r in enumerate(rows)))
    t.add_column("")
    for i, r in enumerate(rows):
        t.add_column(f"[{i}] {'parent' if i == 0 else r['method']}", justify="right")
    for key, title in COLUMNS[2:]:
        t.add_row(title, *(cell(key, r.get(key)) for r in rows))
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
