"""The Python API: `train(recipe) -> Run` and `evaluate(run_dir) -> metrics`, used by the CLI too."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import RunDirError
from .recipe import Recipe, load_recipe
from .track.plots import plot_curves
from .track.rundir import RunDir


@dataclass
class Run:
    """What `train()` returns: the run directory, the final test metrics and the epoch history."""

    dir: RunDir
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = ""

    @property
    def path(self) -> Path:
        return self.dir.path


def train(recipe: str | Path | dict | Recipe, overrides: list[str] | None = None,
          run_dir: str | Path | None = None, progress: bool = True, callbacks: list | None = None) -> Run:
    """Train a recipe end to end; writes a run directory. Raises TrainlabError on bad input.

    `callbacks` (train.callbacks.Callback) see the run's events after the built-in ones."""
    from .train import Trainer

    recipe = load_recipe(recipe, overrides)
    # build everything before the run directory exists: bad input leaves nothing behind
    trainer = Trainer(recipe, progress=progress, callbacks=callbacks)
    rd = RunDir.create(recipe.output.root, recipe.name, run_dir)
    trainer.run_dir = rd
    rd.write_recipe(recipe)
    rd.write_env(device=str(trainer.device), seed=recipe.seed, threads=torch.get_num_threads(),
                 extra={"status": "running", "data": trainer.bundle.info.to_dict()})
    rd.write_json("data/split_sizes.json", trainer.bundle.info.sizes)
    try:
        trainer.fit()
    except KeyboardInterrupt:
        rd.update_env(status="interrupted", end=_now())
        raise
    except BaseException as e:
        rd.update_env(status="failed", error=f"{type(e).__name__}: {e}", end=_now())
        raise
    which = "best" if rd.checkpoint("best").exists() else "last"
    trainer.load_weights(which)
    metrics = evaluate_trainer(trainer, "test", which)
    if recipe.output.plots:
        plot_curves(rd.metrics(), rd.plot("curves.png"), title=recipe.name)
    rd.update_env(status="finished", end=_now(), stop_reason=trainer.stop_reason, epochs_run=trainer.epoch)
    return Run(rd, metrics, trainer.history, trainer.stop_reason)


def evaluate_trainer(trainer, split: str, checkpoint: str) -> dict[str, Any]:
    """Metrics of the trainer's current weights on `split`, written to eval/<split>.json."""
    metrics = trainer.evaluate_split(split)
    metrics.update(split=split, checkpoint=checkpoint, epoch=trainer.epoch)
    trainer.run_dir.write_json(f"eval/{split}.json", metrics)
    return metrics


def evaluate(run_dir: str | Path, split: str = "test", checkpoint: str = "best") -> dict[str, Any]:
    """Rebuild the run's data and model from its recipe, load a checkpoint, and evaluate a split."""
    from .train import Trainer

    rd = RunDir.open(run_dir)
    if not (rd.checkpoint(checkpoint) / "model.safetensors").is_file():
        have = sorted(p.name for p in (rd.path / "checkpoints").glob("*") if not p.name.startswith("."))
        raise RunDirError(f"{rd.path}: no {checkpoint!r} checkpoint (have: {', '.join(have) or 'none'})")
    recipe = load_recipe(rd.recipe_path)
    trainer = Trainer(recipe, run_dir=rd, progress=False)
    trainer.load_weights(checkpoint)
    epoch = _checkpoint_epoch(rd, checkpoint)
    trainer.epoch = epoch
    return evaluate_trainer(trainer, split, checkpoint)


def _checkpoint_epoch(rd: RunDir, which: str) -> int:
    import json

    try:
        state = json.loads((rd.checkpoint(which) / "state.json").read_text())
        trainer = next(v for k, v in state["__dict__"] if k == "trainer")
        return int(next(v for k, v in trainer["__dict__"] if k == "epoch"))
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        return -1


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")
