"""Rich tables for the commands that read run directories (evaluate, runs, runs --compare).

Every name in them comes from the user (class, column, metric and run names, recipe values), so
each is escaped: rich would read `[/x]` as markup (a MarkupError) and `[link=...]` as a hyperlink."""
from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.table import Table

PER_CLASS_COLS = ("precision", "recall", "f1", "support", "auroc", "average_precision")


def metrics_table(m: dict[str, Any], title: str) -> Table:
    """The scalar metrics of an eval/<split>.json."""
    table = Table(title=escape(title), min_width=len(title))  # a title wider than two columns stays on one line
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in m.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("epoch", "samples"):
            table.add_row(escape(k), f"{v:.6g}" if isinstance(v, float) else str(v))
    return table


def per_class_table(rows: list[dict[str, Any]], title: str = "per class") -> Table:
    return _rows_table(rows, "class", PER_CLASS_COLS, title)


def _rows_table(rows: list[dict[str, Any]], key: str, cols: tuple[str, ...], title: str) -> Table:
    """One row per class or label: its name (`key`), its support, then the 4-digit scores `cols`."""
    table = Table(title=escape(title))
    table.add_column(key)
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(escape(str(r[key])), *(str(r[c]) if c == "support" else f"{r[c]:.4f}" for c in cols))
    return table


PER_LABEL_COLS = ("support", "precision", "recall", "f1", "average_precision")


def per_label_table(rows: list[dict[str, Any]], title: str = "per label") -> Table:
    """Multi-label data: one row per label of an eval/<split>.json's `per_label`."""
    return _rows_table(rows, "label", PER_LABEL_COLS, title)


def runs_table(rows: list[dict[str, Any]], title: str) -> Table:
    """`trainlab runs`: one row per run (rows from track.runs.summary_row)."""
    table = Table(title=escape(title))
    for col in ("run", "date", "model", "optimizer", "epochs", "best val", "test", "baseline", "duration", "status"):
        table.add_column(col, justify="right" if col in ("epochs", "duration") else "left",
                         no_wrap=col in ("date", "epochs", "duration", "status"))
    for r in rows:
        best = f"{r['monitor'].split('.', 1)[-1]} {r['best']:.4f}" if r["best"] is not None else "-"
        if r["best"] is not None and r.get("best_epoch") is not None:
            best += f" @{r['best_epoch']}"  # the epoch checkpoints/best holds
        test = f"{r['test_metric']} {r['test']:.4f}" if r["test"] is not None else "-"
        base = f"{r['baseline']:.4f}" if isinstance(r.get("baseline"), (int, float)) else "-"
        dur = f"{r['duration_s']:.0f}s" if r["duration_s"] is not None else "-"
        status = r["status"] + (" †" if r["stale"] else "")
        table.add_row(*map(escape, (r["run"], r["date"], str(r["model"]), r["optimizer"],
                                    f"{r['epochs']}/{r['epochs_planned']}", best, test, base, dur, status)))
    return table


def side_by_side(title: str, first: str, names: list[str], rows: dict[str, list[Any]],
                 numbers: bool = False) -> Table:
    """`trainlab runs --compare`: one column per run. Recipe values are shown as written;
    with `numbers`, floats are rounded to 5 significant digits."""
    table = Table(title=escape(title))
    table.add_column(escape(first), no_wrap=True)
    for n in names:
        table.add_column(escape(n), justify="right" if numbers else "left")
    for k, vals in rows.items():
        table.add_row(escape(k), *(escape(_cell(v, numbers)) for v in vals))
    return table


def _cell(v: Any, numbers: bool) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and numbers:
        return f"{v:.5g}"
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)
