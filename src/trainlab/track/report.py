"""report.html: one self-contained page per run (inline CSS, images as data: URIs, no script,
no network), built from the run directory alone: recipe.yaml, env.json, metrics.jsonl, eval/,
plots/. Plots that are missing from plots/ are redrawn from those files where they can be."""
from __future__ import annotations

import base64
import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

from .evaluation import read_outputs
from .plots import (curves_figure, eval_figures, eval_plot_name, lr_figure, main_metric, png_bytes,
                    prediction_figure)
from .rundir import RunDir, atomic_write
from .runs import load_run

REPORT = "report.html"
SPLITS = ("test", "val", "train")
PER_CLASS_COLS = ("precision", "recall", "f1", "support", "auroc", "average_precision")
SKIP_SCALARS = ("epoch", "seconds", "samples")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1150px;
padding:1.2em 2em;color:#222;line-height:1.4}
h1{margin-bottom:.1em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.sub{color:#666;margin-top:0}table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1em;align-items:start}
figure{margin:0}figure.wide{grid-column:1/-1}figure.wide img{max-width:1000px}figcaption{color:#555;font-size:.9em}
img{width:100%;height:auto;border:1px solid #eee}.status{padding:.1em .5em;border-radius:.3em;background:#eee}
.finished{background:#d8f5d8}.failed{background:#f8d4d4}.interrupted,.running{background:#fdf0c8}
"""


def write_report(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Write the run's report.html (or `path`); returns where it went."""
    rd = RunDir.open(run_dir)
    out = Path(path) if path else rd.path / REPORT
    atomic_write(out, build_report(rd))
    return out


def build_report(rd: RunDir) -> str:
    run = load_run(rd.path)
    evals = {s: run_json(rd, f"eval/{s}.json") for s in SPLITS}
    evals = {s: m for s, m in evals.items() if m}
    name = run.recipe.get("name", rd.path.name)
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{_e(name)} · trainlab report</title><style>{CSS}</style></head><body>",
             _header(run, name), _metrics_section(run, evals), _per_class_section(evals),
             _figures_section(rd, run, evals), _timings_section(run, evals),
             "<h2>Recipe</h2>", f"<pre>{_e(rd.recipe_path.read_text())}</pre>",
             "<h2>Environment</h2>", _kv_table({k: v for k, v in run.env.items() if k != "data"}),
             f"<p class='sub'>written by trainlab {dt.datetime.now().isoformat(timespec='seconds')}</p>",
             "</body></html>"]
    return "\n".join(p for p in parts if p)


def run_json(rd: RunDir, rel: str) -> dict[str, Any] | None:
    p = rd.path / rel
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return _e("" if v is None else v)


def _kv_table(d: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td style='text-align:left'>"
                   f"{_e(json.dumps(v) if isinstance(v, (dict, list)) else v)}</td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _header(run, name: str) -> str:
    status, stale = run.status()
    dur = run.duration_s()
    bits = [f"started {_e(run.env.get('start', '?'))}", f"ended {_e(run.env.get('end', '—'))}",
            f"duration {dur:.1f} s" if dur is not None else "", f"device {_e(run.env.get('device', '?'))}",
            f"{_e(run.env.get('threads', '?'))} threads"]
    note = " (its process is gone)" if stale else ""
    reason = f"<p>{_e(run.env['stop_reason'])}</p>" if run.env.get("stop_reason") else ""
    error = f"<p><b>error:</b> {_e(run.env['error'])}</p>" if run.env.get("error") else ""
    return (f"<h1>{_e(name)}</h1><p class='sub'>{_e(run.path.name)} · "
            f"<span class='status {_e(status)}'>{_e(status)}{note}</span> · "
            + " · ".join(b for b in bits if b) + f"</p>{reason}{error}")


def _metrics_section(run, evals: dict[str, dict]) -> str:
    monitor, best = run.best()
    out = ["<h2>Final metrics</h2>"]
    if best is not None:
        out.append(f"<p>best {_e(monitor)}: <b>{_fmt(best)}</b></p>")
    if not evals:
        return "".join(out) + "<p>No evaluation yet (eval/*.json is missing).</p>"
    splits = list(evals)
    keys = [k for k, v in next(iter(evals.values())).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in SKIP_SCALARS]
    rows = [[k] + [evals[s].get(k) for s in splits] for k in keys]
    rows.append(["samples"] + [evals[s].get("samples") for s in splits])
    head = ["metric"] + [f"{s} ({evals[s].get('checkpoint')} checkpoint, epoch {evals[s].get('epoch')})"
                         for s in splits]
    out.append(_table(head, rows))
    return "".join(out)


def _per_class_section(evals: dict[str, dict]) -> str:
    split = next((s for s in evals if evals[s].get("per_class")), None)
    if split is None:
        return ""
    rows = [[r["class"]] + [r.get(c) for c in PER_CLASS_COLS] for r in evals[split]["per_class"]]
    return f"<h2>Per class ({_e(split)} split)</h2>" + _table(["class", *PER_CLASS_COLS], rows)


def _img(data: bytes, caption: str, wide: bool = False) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return (f"<figure{' class=wide' if wide else ''}><img alt='{_e(caption)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _figures_section(rd: RunDir, run, evals: dict[str, dict]) -> str:
    """Curves and evaluation plots: the PNG from plots/ when there, else redrawn from the data."""
    shown: set[str] = set()

    def plot(fname: str, caption: str, draw=None, wide: bool = False) -> str:
        p = rd.path / "plots" / fname
        if p.is_file():
            shown.add(fname)
            return _img(p.read_bytes(), caption, wide)
        return _img(png_bytes(draw()), caption, wide) if draw is not None else ""

    out = ["<h2>Training curves</h2>"]
    if run.records:
        out.append(plot("curves.png", "loss and metric per epoch (train vs val)",
                        lambda: curves_figure(run.records, run.recipe.get("name", ""))))
        lr = plot("lr.png", "learning rate over optimizer steps",
                  lambda: lr_figure(run.records, _scheduled(rd, run.records)))
        out.append(f"<div class='grid'>{lr}</div>")
    else:
        out.append("<p>metrics.jsonl has no records.</p>")
    for split, m in evals.items():
        figs = eval_figures(m, split)  # cheap: drawn from the JSON; only used when the PNG is missing
        items = [plot(eval_plot_name(split, k), f"{k.replace('_', ' ')} ({split})", lambda f=f: f,
                      wide=k == "confusion_matrix") for k, f in figs.items()]
        items.append(plot(eval_plot_name(split, "wrong"), f"most confidently wrong ({split})", wide=True))
        if m.get("task") == "regression":
            outs = read_outputs(rd, split)
            items.append(plot(eval_plot_name(split, "predictions"), f"predicted vs true ({split})",
                              (lambda o=outs: prediction_figure(*o)) if outs else None))
        items = [i for i in items if i]
        if items:
            out.append(f"<h2>Evaluation plots ({_e(split)})</h2><div class='grid'>{''.join(items)}</div>")
        _close(figs)
    others = sorted(p for p in (rd.path / "plots").glob("*.png") if p.name not in shown) \
        if (rd.path / "plots").is_dir() else []
    if others:
        out.append("<h2>Other plots</h2><div class='grid'>" + "".join(_img(p.read_bytes(), p.stem) for p in others)
                   + "</div>")
    return "".join(out)


def _scheduled(rd: RunDir, records: list[dict]) -> list[tuple[int, float]] | None:
    from ..errors import TrainlabError
    from ..build import scheduled_lrs  # TODO(issue 16 merge): the caller passes the schedule in
    from ..recipe import load_recipe

    try:
        return scheduled_lrs(load_recipe(rd.recipe_path), records)
    except TrainlabError:  # a recipe this version cannot read: show the logged LR only
        return None


def _close(figs: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    for f in figs.values():
        plt.close(f)


def _timings_section(run, evals: dict[str, dict]) -> str:
    train = {r["epoch"]: r for r in run.records if r.get("split") == "train" and "time" in r}
    val = {r["epoch"]: r for r in run.records if r.get("split") == "val"}
    metric = main_metric(list(val.values()) + list(train.values()))
    rows = []
    for ep, r in sorted(train.items()):
        v = val.get(ep, {})
        rows.append([ep, r.get("loss"), v.get("loss"), v.get(metric) if metric else None, r.get("lr"),
                     r.get("time"), r.get("samples_per_s")])
    head = ["epoch", "train loss", "val loss", f"val {metric or ''}", "lr (end)", "train time (s)", "samples/s"]
    out = ["<h2>Epochs and timings</h2>", _table(head, rows) if rows else "<p>no epochs logged</p>"]
    total = [["run duration (s)", run.duration_s()],
             ["training time (s)", sum(r.get("time", 0.0) for r in train.values()) if train else None]]
    total += [[f"evaluation of {s} (s)", m.get("seconds")] for s, m in evals.items()]
    out.append(_table(["", "seconds"], total))
    return "".join(out)
