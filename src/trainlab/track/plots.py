"""Plots of a run (matplotlib, PNG, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(records: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Train vs val loss, and the main metric, per epoch."""
    train = [r for r in records if r.get("split") == "train" and "time" in r]
    val = [r for r in records if r.get("split") == "val"]
    metric = next((m for m in ("accuracy", "r2", "mae") if any(m in r for r in val + train)), None)
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(10 if metric else 5.5, 4), squeeze=False)
    ax = axes[0][0]
    ax.plot([r["epoch"] for r in train], [r["loss"] for r in train], "o-", label="train")
    if val:
        ax.plot([r["epoch"] for r in val], [r["loss"] for r in val], "o-", label="val")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.set_title("loss"), ax.grid(alpha=0.3), ax.legend()
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
