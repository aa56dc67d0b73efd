"""The comparison folder: compare.json, table.md, base_recipe.yaml, plots/*.png and report.html.

It is built in a hidden sibling folder and renamed into place, so it appears complete or not at all.
(The base recipe is `base_recipe.yaml`, not `recipe.yaml`: the folder is not a run directory.)
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..recipe import Recipe
from ..track.plots import png_bytes
from ..track.html import figure, render
from ..track.rundir import atomic_write
from .plots import convergence_figure, lr_sensitivity_figure
from .table import markdown_table, table_cells

PLOTS = {"convergence_epochs.png": "validation metric and training loss per epoch",
         "convergence_seconds.png": "validation metric and training loss against training seconds",
         "lr_sensitivity.png": "LR sensitivity: the LR search per optimizer"}


def write_outputs(folder: Path, base: Recipe, data: dict[str, Any]) -> Path:
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        for name, png in draw_plots(data).items():
            atomic_write(tmp / "plots" / name, png)
        s = data["settings"]
        target = str_target(s["target"])
        atomic_write(tmp / "table.md", markdown_table(data["table"], s["metric"], target))
        atomic_write(tmp / "base_recipe.yaml", base.to_yaml())
        atomic_write(tmp / "compare.json", json.dumps(data, indent=1, default=str) + "\n")
        atomic_write(tmp / "report.html", build_report(data, tmp))
        os.chmod(tmp, 0o777 & ~_umask())
        if folder.exists():  # an empty folder given with --out
            folder.rmdir()
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def str_target(t: dict[str, Any] | None) -> str | None:
    if t is None:
        return None
    return f"{t['metric']} {'≥' if t['mode'] == 'max' else '≤'} {t['value']:g}"


def draw_plots(data: dict[str, Any]) -> dict[str, bytes]:
    s, title = data["settings"], data["recipe"]
    out = {}
    for x in ("epochs", "seconds"):
        fig = convergence_figure(data["runs"], s["optimizers"], s["metric"], x, s["target"],
                                 f"{title}: {len(s['seeds'])} seed(s), band = range over seeds")
        out[f"convergence_{x}.png"] = png_bytes(fig)
    if data["search"]:
        out["lr_sensitivity.png"] = png_bytes(lr_sensitivity_figure(data["search"], s["optimizers"],
                                                                   data["chosen_lr"], s["metric"]))
    return out


def build_report(data: dict[str, Any], folder: Path) -> str:
    """A self-contained page (templates/compare_report.html): protocol, table, plots."""
    s = data["settings"]
    head, cells = table_cells(data["table"], s["metric"], str_target(s["target"]))
    figs = [figure((folder / "plots" / name).read_bytes(), caption, wide=True)
            for name, caption in PLOTS.items() if (folder / "plots" / name).is_file()]
    return render("compare_report.html", recipe=data["recipe"], optimizers=s["optimizers"], seeds=len(s["seeds"]),
                  budget_epochs=s["budget_epochs"], created=data["created"], protocol=data["protocol"],
                  results={"header": head, "rows": cells}, chosen_lr=[[n, lr] for n, lr in data["chosen_lr"].items()],
                  figures=figs)
