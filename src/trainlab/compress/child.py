"""A compressed run: a new run directory beside its parent whose recipe is the parent's with a
`compress:` section (method, parent, checkpoint, the method's options) and, where the method changes
the model's shape (structured pruning), the new model options. It is made by fine-tuning a model
(`fine_tune`, a normal training through `trainlab.train(recipe, model=...)`) or by recording one as
it is (`record`, `trainlab.api.record`); either way `evaluate`, `report`, `summary`, `export` and
`load_run` take it like any run.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..api import LoadedRun, Run
from ..recipe import read_yaml


def child_recipe(parent: LoadedRun, method: str, options: dict[str, Any], model: dict[str, Any] | None = None,
                 epochs: int | None = None, lr_scale: float = 1.0) -> dict[str, Any]:
    """The parent's recipe (as written in its recipe.yaml, a text run reading the parent's
    vocabulary) for the child: named `<parent name>-<method>`, written beside the parent (same
    output.root), `compress: {method, parent, checkpoint, epoch, **options}`; `model` replaces the
    model section (a pruned model's new widths); `epochs`: the fine-tuning's length, the schedule the
    parent's over those epochs, the learning rate times `lr_scale`; early stopping dropped."""
    raw = copy.deepcopy(read_yaml(parent.path / "recipe.yaml"))
    vocab = parent.path / "data" / "vocab.json"
    if vocab.is_file():
        raw.setdefault("data", {})["vocab"] = str(vocab)
    raw["name"] = f"{raw.get('name', 'run')}-{method}"
    raw.setdefault("output", {})["root"] = str(Path(parent.path).parent)
    raw["compress"] = {"method": method, "parent": str(parent.path), "checkpoint": parent.checkpoint,
                       "epoch": parent.epoch, **options}
    raw.pop("search", None)
    raw.pop("early_stopping", None)
    if model is not None:
        raw["model"] = model
    if epochs is not None:
        raw.setdefault("train", {})["epochs"] = int(epochs)
    if lr_scale != 1.0:
        optim = raw.setdefault("optim", {})
        optim["lr"] = float(optim.get("lr", 1e-3)) * lr_scale
    return raw


def fine_tune(recipe: dict[str, Any], model, run_dir: str | Path | None = None, callbacks: list | None = None,
              progress: bool = True) -> Run:
    """Train `model` (weights as they are) under the child `recipe` into a new run directory."""
    from ..api import train

    return train(recipe, run_dir=run_dir, progress=progress, callbacks=callbacks, model=model)


def record(recipe: dict[str, Any], model, run_dir: str | Path | None = None) -> Run:
    """`model` as it is, under the child `recipe`, as a new run directory (no training)."""
    from ..api import record as record_run

    return record_run(recipe, model, run_dir=run_dir)


def parent_of(run_dir: str | Path) -> Path | None:
    """The run a compressed run was made from (its recipe's `compress.parent`), None for others."""
    raw = read_yaml(Path(run_dir) / "recipe.yaml")
    parent = (raw.get("compress") or {}).get("parent") if isinstance(raw, dict) else None
    return Path(parent) if parent else None
