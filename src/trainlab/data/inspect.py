"""What a recipe's data section resolves to (`trainlab data RECIPE`), and a picture of its augmentations."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import build_augment, build_data
from .bundle import DataBundle
from .loader import split_megabytes


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


def augment_figure(bundle: DataBundle, recipe, n: int = 8, rows: int = 3):
    """Top row: n training images as loaded; below: `rows` augmented draws of the same images,
    shown with the fitted normalization undone."""
    from ..track.plots import plt  # pyplot with the headless backend selected

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
    from ..track.plots import save_png

    if not recipe.data.augment or len(bundle.info.input_shape) != 3 or bundle.info.kind != "image":
        return None
    with torch.no_grad():
        return save_png(augment_figure(bundle, recipe), Path(out) / "plots" / "augment.png")
