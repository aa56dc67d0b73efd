"""Trackers: where a run's numbers go besides metrics.jsonl. Each is a `TRACKERS` entry whose
factory returns an `events.Callback`; the recipe's `output.trackers` names the ones a run uses,
and the trainer adds them to its callbacks. Adding one (MLflow, W&B, ...) is one registration
plus its name in a recipe.

A factory may take `recipe`; it has no recipe options of its own. The run directory is not known
yet when trackers are built (`train()` creates it after the Trainer): read `trainer.run_dir` in
`on_fit_start` (None for a trainer without one: log nothing).
"""
from __future__ import annotations

import sys

from ..events import Callback
from ..registry import Registry
from .tensorboard import TensorBoardLogger

TRACKERS = Registry("tracker", "trackers", context=("recipe",))
TRACKERS.add("tensorboard", TensorBoardLogger, "losses, metrics, LR, throughput and the recipe in <run>/tb/ "
             "(TensorBoard event files)")

_noted = False  # the deprecation note for `output.tensorboard` is shown once per process


def check_trackers(names: list[str]) -> None:
    """Raise RecipeError naming `output.trackers.N` for a name that is not a registered tracker."""
    for i, name in enumerate(names):
        TRACKERS.get(name, f"output.trackers.{i}")


def build_trackers(recipe) -> list[Callback]:
    """The callbacks of the trackers `recipe.output.trackers` names, in order. Raises RecipeError."""
    global _noted
    if recipe.output._tensorboard_false and not _noted:
        _noted = True
        print("trainlab: note: output.tensorboard is deprecated; list the trackers you want in "
              "output.trackers instead (e.g. `trackers: []` for none)", file=sys.stderr)
    out = []
    for i, name in enumerate(recipe.output.trackers):
        entry = TRACKERS.get(name, f"output.trackers.{i}")
        out.append(TRACKERS.build(entry.name, {}, f"output.trackers.{i}", recipe=recipe))
    return out
