"""What a recipe's data section resolves to (`trainlab data RECIPE`), and a picture of its augmentations."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .data import DataBundle, build_augment, build_data
from .data.loader import split_megabytes


def describe(recipe) -> tuple[DataBundle, dict[str, Any]]:
    """Build the recipe's data (as training would) and summarize it."""
    bundle = build_data(recipe.data, recipe.seed)
    info = bundle.info
    cfg = recipe.data
    mb = split_megabytes(bundle.train)
    loader = cfg.loader if cfg.loader != "auto" else ("stream" if mb > cfg.memory_budget_mb else "memory")
    summary = {
        "source": cfg.source, "task": info.task, "kind": info.kind, "input_shape": list(info.input_shape),
        "sizes": info.sizes, "num_classes": info.num_classes, "class_names": info.class_names,
        "class_counts": info.class_counts, "stats": info.stats, "notes": info.notes,
        "augment": [next(iter(a)) if isinstance(a, dict) else a for a in cfg.augment],
        "loader": loader, "train_megabytes": round(mb, 2),
        "feature_names": info.extra.get("encoded_features") or info.extra.get("feature_names"),
    }
    return bundle, summary


def print_summary(console, s: dict[str, Any]) -> None:
    """Rich tables of `describe`'s summary: splits, classes per split, fitted statistics, notes."""
    from rich.markup import escape  # class, column and file names come from the data: never markup
    from rich.table import Table

    console.print(f"[bold]{escape(s['source'])}[/bold]: {s['task']}, {s['kind']} inputs of shape {tuple(s['input_shape'])}, "
                  f"training loader: {s['loader']} ({s['train_megabytes']} MB)", highlight=False)
    sizes = Table(title="splits", title_justify="left")
    sizes.add_column("split")
    sizes.add_column("samples", justify="right")
    for k, v in s["sizes"].items():
        sizes.add_row(k, f"{v:,}")
    console.print(sizes)
    if s["class_counts"]:
        multilabel = s.get("task") == "multilabel"  # counts are each label's positives
        classes = Table(title=f"{s['num_classes']} labels (positives per split)" if multilabel else
                        f"{s['num_classes']} classes", title_justify="left")
        classes.add_column("label" if multilabel else "class")
        splits = list(s["class_counts"])
        for k in splits:
            classes.add_column(k, justify="right")
        for i, name in enumerate(s["class_names"] or range(s["num_classes"])):
            classes.add_row(escape(str(name)), *(f"{s['class_counts'][k][i]:,}" for k in splits))
        console.print(classes)
    for name, st in s["stats"].items():
        stats = Table(title=f"{escape(name)} ({escape(st['method'])}), fitted on the training split", title_justify="left")
        stats.add_column("")
        stats.add_column("shift", justify="right")
        stats.add_column("scale", justify="right")
        per = "channel" if len(s["input_shape"]) == 3 else "feature"
        names = s["feature_names"] or [f"{per} {i}" for i in range(len(st["shift"]))]
        for i, (a, b) in enumerate(zip(st["shift"], st["scale"])):
            if i == 12 and len(st["shift"]) > 13:
                stats.add_row("…", f"({len(st['shift']) - 12} more)", "")
                break
            stats.add_row(escape(str(names[i])), f"{a:.4g}", f"{b:.4g}")
        console.print(stats)
    for note in s["notes"]:
        console.print(f"note: {escape(note)}", highlight=False)


def augment_figure(bundle: DataBundle, recipe, n: int = 8, rows: int = 3):
    """Top row: n training images as loaded; below: `rows` augmented draws of the same images,
    shown with the fitted normalization undone."""
    from .track.plots import plt  # pyplot with the headless backend selected

    x, y = bundle.train.x[:n], bundle.train.y[:n]
    aug = build_augment(recipe.data.augment, bundle.info, "cpu", recipe.seed)
    shown = [x] + [aug(x.clone(), y)[0] for _ in range(rows)]
    shift, scale = bundle.preprocess.get("0.shift"), bundle.preprocess.get("0.scale")
    fig, axes = plt.subplots(len(shown), len(x), figsize=(1.2 * len(x), 1.25 * len(shown)), squeeze=False)
    for r, batch in enumerate(shown):
        if shift is not None:
            batch = batch * scale + shift
        for c in range(len(x)):
            img = batch[c].clamp(0, 1)
            ax = axes[r][c]
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(img[:3].permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel("original" if r == 0 else f"draw {r}", fontsize=8)
    names = ", ".join(str(a) for a in recipe.data.augment)
    fig.suptitle(f"augment: {names}", fontsize=9)
    fig.tight_layout()
    return fig


def write_augment_png(bundle: DataBundle, recipe, out: Path) -> Path | None:
    """plots/augment.png under `out`, or None when the data are not images or nothing augments them."""
    from .track.plots import save_png

    if not recipe.data.augment or len(bundle.info.input_shape) != 3 or bundle.info.kind != "image":
        return None
    with torch.no_grad():
        return save_png(augment_figure(bundle, recipe), Path(out) / "plots" / "augment.png")
