"""The comparison table: one row per optimizer, mean ± std over seeds (pandas), ranked by steps to
the target (runs that reach it in every seed first), then by the final metric."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

STATS = ("steps_to_target", "epochs_to_target", "seconds_to_target", "final", "best", "final_train_loss",
         "ms_per_step")


def summarize(runs: list[dict[str, Any]], optimizers: list[str], mode: str) -> list[dict[str, Any]]:
    """Rows of the table, ranked. Each statistic has `<name>_mean` and `<name>_std` (sample std over
    seeds; None with one seed); `*_to_target` are over the seeds that reached it."""
    df = pd.DataFrame([{k: r.get(k) for k in ("optimizer", "lr", "seed", "status", "reached", *STATS)}
                       for r in runs])
    df[list(STATS)] = df[list(STATS)].astype(float)
    rows = []
    for name in optimizers:
        g = df[df["optimizer"] == name]
        row: dict[str, Any] = {"optimizer": name, "lr": float(g["lr"].iloc[0]), "seeds": len(g),
                               "reached": int(g["reached"].sum()),
                               "diverged": int((g["status"] == "diverged").sum())}
        for s in STATS:
            col = g[s].dropna()
            row[f"{s}_mean"] = float(col.mean()) if len(col) else None
            row[f"{s}_std"] = float(col.std()) if len(col) > 1 else None
        rows.append(row)
    sign = -1.0 if mode == "max" else 1.0

    def key(r: dict[str, Any]):
        steps = r["steps_to_target_mean"] if r["reached"] else math.inf
        final = r["final_mean"]
        return (r["seeds"] - r["reached"], steps, sign * final if final is not None else math.inf, r["optimizer"])

    rows.sort(key=key)
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def _pm(mean: float | None, std: float | None, fmt: str) -> str:
    """`mean ± std`; a std in `g` format keeps 2 significant digits."""
    if mean is None:
        return "-"
    if std is None:
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} ± {std:{'.2g' if fmt.endswith('g') else fmt}}"


def table_cells(rows: list[dict[str, Any]], metric: str, target: str | None) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells, shared by the markdown file, the terminal and report.html."""
    head = ["rank", "optimizer", "lr"]
    if target:
        head += ["reached", "steps to target", "epochs to target", "seconds to target"]
    head += [f"final {metric}", f"best {metric}", "final train loss", "ms / step"]
    cells = []
    for r in rows:
        row = [str(r["rank"]), r["optimizer"] + (f" ({r['diverged']} diverged)" if r["diverged"] else ""),
               f"{r['lr']:.3g}"]
        if target:
            n = r["reached"]
            row += [f"{n}/{r['seeds']}",
                    _pm(r["steps_to_target_mean"], r["steps_to_target_std"], ".0f") if n else "not reached",
                    _pm(r["epochs_to_target_mean"], r["epochs_to_target_std"], ".2f") if n else "not reached",
                    _pm(r["seconds_to_target_mean"], r["seconds_to_target_std"], ".2f") if n else "not reached"]
        row += [_pm(r["final_mean"], r["final_std"], ".4g"), _pm(r["best_mean"], r["best_std"], ".4g"),
                _pm(r["final_train_loss_mean"], r["final_train_loss_std"], ".4g"),
                _pm(r["ms_per_step_mean"], r["ms_per_step_std"], ".2f")]
        cells.append(row)
    return head, cells


def markdown_table(rows: list[dict[str, Any]], metric: str, target: str | None) -> str:
    head, cells = table_cells(rows, metric, target)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def rich_table(rows: list[dict[str, Any]], metric: str, target: str | None, title: str) -> Table:
    head, cells = table_cells(rows, metric, target)
    table = Table(title=escape(title), title_justify="left")  # names the metric and the recipe
    for i, h in enumerate(head):
        table.add_column(escape(h), justify="left" if i in (1,) else "right")
    for c in cells:
        table.add_row(*map(escape, c))
    return table
