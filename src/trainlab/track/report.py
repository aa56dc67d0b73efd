"""report.html: one self-contained page per run (templates/run_report.html through track/html.py: inline
CSS, images as data: URIs, no script, no network), built from the run directory alone: recipe.yaml,
env.json, metrics.jsonl, eval/, plots/. Plots that are missing from plots/ are redrawn from those files
where they can be."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..redact import redact_all
from .evaluation import read_outputs
from .html import figure, render
from .plots import (EVAL_FIGURES, curves_figure, eval_figures, eval_plot_name, lr_figure, main_metric,
                    png_bytes, prediction_figure)
from .rundir import RunDir, atomic_write
from .runs import load_run

REPORT = "report.html"
SPLITS = ("test", "val", "train")
PER_CLASS_COLS = ("precision", "recall", "f1", "support", "auroc", "average_precision")
PER_LABEL_COLS = ("support", "precision", "recall", "f1", "average_precision")  # multi-label data
SKIP_SCALARS = ("epoch", "seconds", "samples")


Schedule = Callable[[list[dict[str, Any]]], "list[tuple[int, float]] | None"]


def write_report(run_dir: str | Path, path: str | Path | None = None, schedule: Schedule | None = None) -> Path:
    """Write the run's report.html (or `path`); returns where it went. `schedule`: the LR after
    every step replayed from the recipe (`trainlab.build.scheduled_lrs`), drawn when the run has
    no plots/lr.png of its own."""
    rd = RunDir.open(run_dir)
    out = Path(path) if path else rd.inside(REPORT)
    atomic_write(out, build_report(rd, schedule))
    return out


def build_report(rd: RunDir, schedule: Schedule | None = None) -> str:
    """The page (templates/run_report.html) for run directory `rd`."""
    run = load_run(rd.path)
    evals = {s: run_json(rd, f"eval/{s}.json") for s in SPLITS}
    evals = {s: m for s, m in evals.items() if m}
    monitor, best = run.best()
    picked = run.picked() or {}
    return render("run_report.html", name=run.recipe.get("name", rd.path.name), **_header(run),
                  monitor=monitor, best=best, best_reason=picked.get("reason"), baselines=_baselines(evals),
                  metrics=_metrics(evals), per_class=_per_class(evals), per_label=_per_label(evals),
                  **_figures(rd, run, evals, schedule), **_timings(run, evals), recipe_text=rd.recipe_path.read_text(),
                  env_rows=[(k, redact_all(v)) for k, v in run.env.items() if k != "data"])  # older env.json


def run_json(rd: RunDir, rel: str) -> dict[str, Any] | None:
    p = rd.path / rel
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def _header(run) -> dict[str, Any]:
    status, stale = run.status()
    dur = run.duration_s()
    facts = [f"started {run.env.get('start', '?')}", f"ended {run.env.get('end', '—')}",
             f"duration {dur:.1f} s" if dur is not None else "", f"device {run.env.get('device', '?')}",
             f"{run.env.get('threads', '?')} threads"]
    return {"folder": run.path.name, "status": status, "stale": stale, "facts": [f for f in facts if f],
            "stop_reason": run.env.get("stop_reason"), "error": run.env.get("error")}


def _metrics(evals: dict[str, dict]) -> dict[str, list] | None:
    if not evals:
        return None
    splits = list(evals)
    keys = [k for k, v in next(iter(evals.values())).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in SKIP_SCALARS]
    # each split's column, then its baseline's (the trivial predictor on the same split) where it has one
    cols = [c for s in splits for c in ([(s, False), (s, True)] if isinstance(evals[s].get("baseline"), dict)
                                        else [(s, False)])]

    def cell(s: str, base: bool, k: str):
        return (evals[s]["baseline"].get(k) if k != "samples" else None) if base else evals[s].get(k)
    rows = [[k] + [cell(s, b, k) for s, b in cols] for k in keys]
    rows.append(["samples"] + [cell(s, b, "samples") for s, b in cols])
    header = ["metric"] + [f"{s} baseline ({_baseline_name(evals[s]['baseline'])})" if b else
                           f"{s} ({evals[s].get('checkpoint')} checkpoint, epoch {evals[s].get('epoch')})"
                           for s, b in cols]
    return {"header": header, "rows": rows}


def _baseline_name(b: dict[str, Any]) -> str:
    if b.get("kind") == "majority class":
        return f"always {b.get('class')!r}, the most frequent training class"
    mean = b.get("mean")
    return f"always the training mean {mean:.4g}" if isinstance(mean, (int, float)) else "always the training mean"


def _baselines(evals: dict[str, dict]) -> list[str]:
    """One sentence per split: what the model scores beside the trivial predictor."""
    out = []
    for s, m in evals.items():
        b = m.get("baseline")
        if not isinstance(b, dict):
            continue
        keys = ("accuracy", "f1_macro") if b.get("kind") == "majority class" else ("mse", "mae", "r2")
        shown = ", ".join(f"{k} {m[k]:.4f} vs {b[k]:.4f}" for k in keys
                          if isinstance(m.get(k), (int, float)) and isinstance(b.get(k), (int, float)))
        out.append(f"{s}: model vs baseline ({_baseline_name(b)}): {shown}")
    return out


def _per_class(evals: dict[str, dict]) -> dict[str, Any] | None:
    return _per_rows(evals, "per_class", "class", PER_CLASS_COLS)


def _per_label(evals: dict[str, dict]) -> dict[str, Any] | None:
    """Multi-label data: one row per label (support, precision, recall, F1 at 0.5, AP)."""
    return _per_rows(evals, "per_label", "label", PER_LABEL_COLS)


def _per_rows(evals: dict[str, dict], field: str, key: str, cols: tuple[str, ...]) -> dict[str, Any] | None:
    """The first split's `field` table (per class or per label) as a header and rows."""
    split = next((s for s in evals if evals[s].get(field)), None)
    if split is None:
        return None
    rows = [[r[key]] + [r.get(c) for c in cols] for r in evals[split][field]]
    return {"split": split, "header": [key, *cols], "rows": rows}


def _figures(rd: RunDir, run, evals: dict[str, dict], schedule: Schedule | None = None) -> dict[str, Any]:
    """Curves and evaluation plots: the PNG from plots/ when there, else redrawn from the data."""
    shown: set[str] = set()

    def plot(fname: str, caption: str, draw=None, wide: bool = False) -> dict[str, Any] | None:
        p = rd.path / "plots" / fname
        if p.is_file():
            shown.add(fname)
            return figure(p.read_bytes(), caption, wide)
        return figure(png_bytes(draw()), caption, wide) if draw is not None else None

    curves = None
    if run.records:
        main = plot("curves.png", "loss and metric per epoch (train vs val)",
                    lambda: curves_figure(run.records, run.recipe.get("name", "")))
        lr = plot("lr.png", "learning rate over optimizer steps",
                  lambda: lr_figure(run.records, schedule(run.records) if schedule else None))
        curves = {"main": main, "grid": [lr]}
    sections = []
    for split, m in evals.items():
        # drawn from the JSON only when its PNG is missing: the end of training wrote them all, and
        # drawing a figure costs as much as its PNG (~0.1 s each)
        kinds = list(EVAL_FIGURES) if "confusion_matrix" in m else []
        items = [plot(eval_plot_name(split, k), f"{k.replace('_', ' ')} ({split})",
                      lambda k=k, m=m, split=split: eval_figures(m, split, only=k)[k],
                      wide=k == "confusion_matrix") for k in kinds]
        items.append(plot(eval_plot_name(split, "wrong"), f"most confidently wrong ({split})", wide=True))
        if m.get("task") == "regression":
            outs = read_outputs(rd, split)
            items.append(plot(eval_plot_name(split, "predictions"), f"predicted vs true ({split})",
                              (lambda o=outs: prediction_figure(*o)) if outs else None))
        items = [i for i in items if i]
        if items:
            sections.append({"split": split, "figures": items})
    others = sorted(p for p in (rd.path / "plots").glob("*.png") if p.name not in shown) \
        if (rd.path / "plots").is_dir() else []
    return {"curves": curves, "eval_plots": sections,
            "other_plots": [figure(p.read_bytes(), p.stem) for p in others]}


def _timings(run, evals: dict[str, dict]) -> dict[str, Any]:
    train = {r["epoch"]: r for r in run.records if r.get("split") == "train" and "time" in r}
    val = {r["epoch"]: r for r in run.records if r.get("split") == "val"}
    metric = main_metric(list(val.values()) + list(train.values()))
    rows = []
    for ep, r in sorted(train.items()):
        v = val.get(ep, {})
        rows.append([ep, r.get("loss"), v.get("loss"), v.get(metric) if metric else None, r.get("lr"),
                     r.get("time"), r.get("samples_per_s")])
    header = ["epoch", "train loss", "val loss", f"val {metric or ''}", "lr (end)", "train time (s)", "samples/s"]
    totals = [["run duration (s)", run.duration_s()],
              ["training time (s)", sum(r.get("time", 0.0) for r in train.values()) if train else None]]
    totals += [[f"evaluation of {s} (s)", m.get("seconds")] for s, m in evals.items()]
    return {"epochs": {"header": header, "rows": rows}, "totals": totals}
