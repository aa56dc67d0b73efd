"""Comparison plots: convergence per optimizer (mean over seeds, shaded min–max across seeds) against
epochs and against training seconds, and LR sensitivity (the search's metric against the LR)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..track.plots import plt  # the project's headless matplotlib (Agg)


def _curves(runs: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(epochs, values per seed, seconds per seed) over the points every seed of one optimizer logged:
    the target checks when the runs made them (finer than epochs) and `key` is in them, else epoch ends."""
    use_checks = all(r.get("checks") and key in r["checks"][0] for r in runs)
    curves = [r["checks"] if use_checks else r["curve"] for r in runs if r["curve"]]
    if not curves:
        return None
    n = min(len(c) for c in curves)
    vals = np.array([[p.get(key, np.nan) if p.get(key) is not None else np.nan for p in c[:n]] for c in curves],
                    dtype=float)
    secs = np.array([[p["seconds"] for p in c[:n]] for c in curves], dtype=float)
    return np.array([p["epoch"] for p in curves[0][:n]], dtype=float), vals, secs


def convergence_figure(runs: list[dict[str, Any]], optimizers: list[str], metric: str, x: str,
                       target: dict[str, Any] | None = None, title: str = ""):
    """Two panels: validation `metric` and train loss against epochs (`x="epochs"`) or cumulative
    training seconds (`x="seconds"`, mean over seeds). Lines are the seed mean, bands the seed range."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, name in enumerate(optimizers):
        mine = [r for r in runs if r["optimizer"] == name]
        lr = mine[0]["lr"] if mine else None
        for ax, key in zip(axes, (metric, "train.loss")):
            got = _curves(mine, key)
            if got is None:
                continue
            epochs, vals, secs = got
            xs = epochs if x == "epochs" else secs.mean(axis=0)
            mean = np.nanmean(vals, axis=0) if np.isfinite(vals).any() else vals[0]
            ax.plot(xs, mean, "o-" if len(xs) <= 30 else "-", ms=3, color=f"C{i}", label=f"{name} (lr {lr:.3g})")
            if len(vals) > 1:
                ax.fill_between(xs, np.nanmin(vals, axis=0), np.nanmax(vals, axis=0), color=f"C{i}", alpha=0.2)
    if target is not None and target["metric"] == metric:
        axes[0].axhline(target["value"], color="grey", ls="--", lw=1, label=f"target {target['value']:g}")
    xlabel = "epoch" if x == "epochs" else "training seconds (validation excluded)"
    for ax, key in zip(axes, (metric, "train.loss")):
        ax.set_xlabel(xlabel), ax.set_ylabel(key), ax.grid(alpha=0.3)
        ax.set_title(f"{key} vs {'epochs' if x == 'epochs' else 'wall time'}")
    if "loss" in metric:
        axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def lr_sensitivity_figure(search: list[dict[str, Any]], optimizers: list[str], chosen: dict[str, float],
                          metric: str, title: str = ""):
    """Grid search: the best `metric` of the short runs against the LR (log), per optimizer, the
    chosen LR starred; diverged runs as crosses on the axis. LR range test: the smoothed loss
    against the LR, the chosen LR marked."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    finder = any("lr_find" in r for r in search)
    for i, name in enumerate(optimizers):
        mine = [r for r in search if r["optimizer"] == name]
        if finder:
            for r in mine:
                lf = r.get("lr_find") or {}
                if lf.get("lrs"):
                    ax.plot(lf["lrs"], lf["smoothed"], color=f"C{i}", lw=1.5, label=name)
                    ax.axvline(chosen[name], color=f"C{i}", ls="--", lw=0.8)
            continue
        pts = sorted((r["lr"], r["best"]) for r in mine if r["best"] is not None)
        if pts:
            ax.plot(*zip(*pts), "o-", color=f"C{i}", label=name)
        best = next((r["best"] for r in mine if r["lr"] == chosen.get(name) and r["best"] is not None), None)
        if best is not None:
            ax.plot([chosen[name]], [best], "*", ms=14, color=f"C{i}", markeredgecolor="black")
        for r in mine:
            if r["best"] is None:
                ax.plot([r["lr"]], [0], "x", color=f"C{i}", transform=ax.get_xaxis_transform(), clip_on=False)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss (LR range test)" if finder else f"best {metric} of the short run")
    if finder or "loss" in metric:
        ax.set_yscale("log")
    ax.set_title(title or ("LR range test per optimizer" if finder else "LR sensitivity (★ chosen)"))
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
