"""The comparison folder: compare.json, table.md, base_recipe.yaml, plots/*.png and report.html.

It is built in a hidden sibling folder and renamed into place, so it appears complete or not at all.
(The base recipe is `base_recipe.yaml`, not `recipe.yaml`: the folder is not a run directory.)
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..recipe import Recipe
from ..track.plots import png_bytes
from ..track.report import CSS, _e, _img, _table
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
    """A self-contained page (the run report's CSS and image helpers): protocol, table, plots."""
    s = data["settings"]
    head, cells = table_cells(data["table"], s["metric"], str_target(s["target"]))
    figs = [_img((folder / "plots" / name).read_bytes(), caption, wide=True)
            for name, caption in PLOTS.items() if (folder / "plots" / name).is_file()]
    chosen = [[name, lr] for name, lr in data["chosen_lr"].items()]
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{_e(data['recipe'])} · optimizer comparison</title><style>{CSS}</style></head><body>",
             f"<h1>{_e(data['recipe'])}: optimizer comparison</h1>",
             (f"<p class='sub'>{_e(', '.join(s['optimizers']))} · {len(s['seeds'])} seed(s) · "
             f"{s['budget_epochs']} epochs · {_e(data['created'])}</p>"),
             "<h2>Optimizer comparison</h2>", "<h3>Protocol</h3>",
             "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in data["protocol"]) + "</ul>",
             "<h3>Results</h3>", _table(head, cells),
             "<h3>Chosen learning rates</h3>", _table(["optimizer", "lr"], chosen),
             "<h3>Plots</h3>", f"<div class='grid'>{''.join(figs)}</div>",
             f"<p class='sub'>written by trainlab {dt.datetime.now().isoformat(timespec='seconds')}</p>",
             "</body></html>"]
    return "\n".join(parts)
