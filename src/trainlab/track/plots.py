"""Plots of a run (matplotlib, PNG, headless).

Each `*_figure` function draws from plain data (metrics.jsonl records, an eval/<split>.json dict,
tensors) and returns a Figure; `save_png` writes it to plots/, `png_bytes` embeds it in the
HTML report. So the report can redraw any plot from the run directory alone.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

MAIN_METRICS = ("accuracy", "r2", "mae")


def save_png(fig, path: Path, dpi: int = 110) -> Path:
    from .rundir import atomic_write

    atomic_write(Path(path), png_bytes(fig, dpi))
    return Path(path)


def png_bytes(fig, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def main_metric(records: list[dict[str, Any]]) -> str | None:
    """The metric a run is judged by in plots: accuracy (classification) or r2 / mae (regression)."""
    return next((m for m in MAIN_METRICS if any(m in r for r in records)), None)


def _epoch_records(records: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    # the trainer's epoch-end train record carries "time"; the every-log_every-steps ones do not
    return [r for r in records if r.get("split") == split and (split != "train" or "time" in r)]


def curves_figure(records: list[dict[str, Any]], title: str = ""):
    """Train vs val loss, and the main metric, per epoch."""
    train, val = _epoch_records(records, "train"), _epoch_records(records, "val")
    metric = main_metric(val + train)
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(10 if metric else 5.5, 4), squeeze=False)
    ax = axes[0][0]
    ax.plot([r["epoch"] for r in train], [r["loss"] for r in train], "o-", label="train")
    if val:
        ax.plot([r["epoch"] for r in val], [r["loss"] for r in val], "o-", label="val")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.set_title("loss"), ax.grid(alpha=0.3), ax.legend()
    for a in axes[0]:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    if metric:
        ax = axes[0][1]
        for name, rs in (("train", train), ("val", val)):
            pts = [(r["epoch"], r[metric]) for r in rs if metric in r]
            if pts:
                ax.plot(*zip(*pts), "o-", label=name)
        ax.set_xlabel("epoch"), ax.set_ylabel(metric), ax.set_title(metric), ax.grid(alpha=0.3), ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(records: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    return save_png(curves_figure(records, title), path)


def lr_figure(records: list[dict[str, Any]], scheduled: list[tuple[int, float]] | None = None):
    """The learning rate over optimizer steps: the schedule replayed step by step (when given) and the
    values the run logged (every `train.log_every` steps and at each epoch end, dashed lines)."""
    pts = sorted({(r["step"], r["lr"]) for r in records if r.get("split") == "train" and "lr" in r})
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if scheduled:
        ax.plot(*zip(*scheduled), "-", lw=1.4, label="schedule")
    if pts:
        ax.plot(*zip(*pts), "o" if scheduled else "o-", ms=3.5, label="logged")
    for r in _epoch_records(records, "train"):
        ax.axvline(r["step"], color="grey", lw=0.6, ls="--", alpha=0.5)
    ax.set_xlabel("optimizer step"), ax.set_ylabel("learning rate"), ax.set_title("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.grid(alpha=0.3)
    if scheduled or pts:  # a run recorded without training (trainlab compress) logged no learning rate
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def confusion_figure(cm: list[list[int]], class_names: list[str], title: str = "confusion matrix"):
    """Heatmap of counts (rows: true class, columns: predicted); colour is the row share."""
    m = np.asarray(cm, dtype=float)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    size = max(4.5, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title)
    if n <= 30:  # counts stay legible up to ~30 classes
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8 if n > 12 else 9,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    return fig


def roc_figure(roc: list[dict[str, Any]], title: str = "ROC (one-vs-rest)"):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for c in roc:
        ax.plot(c["fpr"], c["tpr"], lw=1.3, label=f"{c['class']} (AUC {c['auroc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
    ax.set_xlabel("false positive rate"), ax.set_ylabel("true positive rate"), ax.set_title(title)
    ax.set_xlim(0, 1), ax.set_ylim(0, 1.01), ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def pr_figure(pr: list[dict[str, Any]], title: str = "precision-recall (one-vs-rest)"):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for c in pr:
        ax.plot(c["recall"], c["precision"], lw=1.3, label=f"{c['class']} (AP {c['average_precision']:.3f})")
    ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_title(title)
    ax.set_xlim(0, 1), ax.set_ylim(0, 1.01), ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def most_confident_wrong(outputs, targets, k: int = 16) -> list[tuple[int, int, float]]:
    """(index, predicted class, confidence) of the k wrong predictions with the highest confidence."""
    import torch

    o = outputs.double()
    probs = (torch.cat([1 - torch.sigmoid(o), torch.sigmoid(o)], 1) if o.shape[1] == 1
             else torch.softmax(o, dim=1))
    conf, pred = probs.max(dim=1)
    t = targets.argmax(1) if targets.ndim == 2 else targets
    wrong = (pred != t).nonzero().flatten()
    order = wrong[conf[wrong].argsort(descending=True)][:k]
    return [(int(i), int(pred[i]), float(conf[i])) for i in order]


def wrong_examples_figure(images, targets, picks: list[tuple[int, int, float]], class_names: list[str]):
    """A grid of images with their true and predicted class and the model's confidence.

    Drawn as one mosaic image on one axes, each label a text under its tile: a grid of 16 small axes
    with titles and a tight layout costs several times as long to render, for the same picture."""
    n = max(len(picks), 1)
    cols = min(4 if n <= 8 else 6 if n <= 24 else 8, n)
    rows = math.ceil(n / cols)
    tiles = []
    for i, _, _ in picks:
        img = images[i].detach().float().cpu().numpy()
        img = (img - img.min()) / max(float(img.max() - img.min()), 1e-8)  # undo normalization for display
        tiles.append(np.repeat(img[:1], 3, 0) if img.shape[0] == 1 else img[:3])
    c, h, w = tiles[0].shape if tiles else (3, 8, 8)
    pad, label = max(2, h // 10), max(h // 2, 12)  # room between tiles, and under each for its label
    cell_h, cell_w = h + label + pad, w + pad
    mosaic = np.ones((rows * cell_h, cols * cell_w, 3), dtype=np.float32)
    fig, ax = plt.subplots(figsize=(2.1 * cols, 2.5 * rows + 0.4))
    for k, ((i, pred, conf), tile) in enumerate(zip(picks, tiles)):
        r, col = divmod(k, cols)
        y, x = r * cell_h, col * cell_w
        mosaic[y:y + h, x:x + w] = np.transpose(tile, (1, 2, 0))
        true = int(targets[i].argmax()) if targets.ndim == 2 else int(targets[i])
        ax.text(x + w / 2, y + h + 1, f"true: {class_names[true]}\npred: {class_names[pred]} ({conf:.0%})",
                ha="center", va="top", fontsize=8)
    ax.imshow(mosaic, interpolation="nearest")
    ax.axis("off")
    ax.set_title("most confidently wrong", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.01)
    return fig


def prediction_figure(outputs, targets, title: str = "predicted vs true"):
    """Regression: predicted against true values (first output), with the y = x line."""
    o = outputs.reshape(len(outputs), -1)[:, 0].float().numpy()
    t = targets.reshape(len(targets), -1)[:, 0].float().numpy()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(t, o, s=6, alpha=0.5)
    lo, hi = float(min(t.min(), o.min())), float(max(t.max(), o.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=0.8)
    ax.set_xlabel("true"), ax.set_ylabel("predicted"), ax.set_title(title), ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def overlay_figure(runs: dict[str, list[dict[str, Any]]], metric: str | None = None):
    """Validation loss (and the main metric) per epoch of several runs on shared axes."""
    every = [r for recs in runs.values() for r in recs]
    metric = metric or main_metric(_epoch_records(every, "val"))
    keys = ["loss"] + ([metric] if metric and metric != "loss" else [])
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, recs in runs.items():
            pts = [(r["epoch"], r[key]) for r in _epoch_records(recs, "val") if key in r]
            if pts:
                ax.plot(*zip(*pts), "o-", label=label)
        ax.set_xlabel("epoch"), ax.set_ylabel(f"val {key}"), ax.set_title(f"validation {key}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


EVAL_PLOTS = ("confusion_matrix", "roc", "pr", "wrong", "predictions")


def eval_plot_name(split: str, kind: str) -> str:
    """plots/<split>_<kind>.png, e.g. plots/test_confusion_matrix.png."""
    return f"{split}_{kind}.png"


EVAL_FIGURES = ("confusion_matrix", "roc", "pr")  # what eval_figures draws from an eval JSON alone


def eval_figures(metrics: dict[str, Any], split: str, only: str | None = None) -> dict[str, Any]:
    """The figures an eval/<split>.json alone can draw: confusion matrix, ROC and PR curves
    (`only`: just that one of EVAL_FIGURES)."""
    figs = {}
    if "confusion_matrix" in metrics:
        names = metrics["class_names"]
        binary = len(names) == 2
        if only in (None, "confusion_matrix"):
            figs["confusion_matrix"] = confusion_figure(metrics["confusion_matrix"], names,
                                                        f"confusion matrix ({split}, {metrics['samples']} samples)")
        if only in (None, "roc"):
            figs["roc"] = roc_figure(metrics["roc"], f"ROC ({split})" if binary else f"ROC one-vs-rest ({split})")
        if only in (None, "pr"):
            figs["pr"] = pr_figure(metrics["pr"], f"precision-recall ({split})" if binary
                                   else f"precision-recall one-vs-rest ({split})")
    return figs
