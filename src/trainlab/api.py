"""The Python API: `train(recipe) -> Run` and `evaluate(run_dir) -> metrics`, used by the CLI too."""
from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import RunDirError
from .recipe import Recipe, load_recipe, read_yaml
from .track.plots import lr_figure, plot_curves, save_png, scheduled_lrs
from .track.rundir import RunDir, process_identity


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

    `callbacks`: extra `trainlab.train.callbacks.Callback` objects for the Trainer.
    """
    from .train import Trainer

    recipe = load_recipe(recipe, overrides)
    # build everything before the run directory exists: bad input leaves nothing behind
    trainer = Trainer(recipe, progress=progress, callbacks=callbacks)
    rd = RunDir.create(recipe.output.root, recipe.name, run_dir)
    trainer.run_dir = rd
    rd.write_recipe(recipe)
    rd.write_env(device=str(trainer.device), seed=recipe.seed, threads=torch.get_num_threads(),
                 extra={"status": "running", "data": trainer.bundle.info.to_dict(),
                        "determinism": trainer.determinism})
    from .data import save_data_state

    save_data_state(rd, trainer.bundle)  # split sizes and indices, fitted preprocessing
    for note in trainer.bundle.info.notes:  # rows dropped, cells imputed: said once, never silent
        print(f"trainlab: data: {note}", file=sys.stderr, flush=True)
    if "vocab" in trainer.bundle.info.extra:  # text: evaluation must map tokens to the same ids
        rd.write_json("data/vocab.json", trainer.bundle.info.extra["vocab"])
    return _fit_and_finish(trainer, rd)


def resume(run_dir: str | Path, progress: bool = True, callbacks: list | None = None) -> Run:
    """Continue a stopped, interrupted or crashed run from its newest complete checkpoint, with its own recipe.

    Restores weights, optimizer, schedule, early stopping, every RNG and the loader's position in
    the epoch, so on the CPU the run ends bitwise as it would have uninterrupted. Damaged
    checkpoints are skipped with a warning. Raises RunDirError for a missing or finished run.
    """
    from .train import Trainer
    from .train.recovery import resume_latest

    rd = RunDir.open(run_dir)
    env = rd.read_json("env.json") if (rd.path / "env.json").is_file() else {}
    if env.get("status") == "finished":
        raise RunDirError(f"{rd.path}: the run already finished; nothing to resume")
    recipe = load_recipe(rd.recipe_path)
    trainer = Trainer(recipe, run_dir=rd, progress=progress, callbacks=callbacks)
    used = resume_latest(trainer)
    rd.update_env(status="running", resumes=[*env.get("resumes", []), {**used, "time": _now()}],
                  **process_identity())
    return _fit_and_finish(trainer, rd)


def _fit_and_finish(trainer, rd: RunDir) -> Run:
    """Fit, evaluate the best (else last) weights on test, plot; env.json says how the run ended."""
    from .train.signals import TrainingInterrupted

    recipe = trainer.recipe
    try:
        trainer.fit()
        rd.update_env(precision=trainer.precision)  # `auto` resolved (on a CPU: by the measured step)
        which = "best" if rd.checkpoint("best").exists() and trainer.restore_best else "last"
        trainer.load_weights(which)
        metrics = evaluate_trainer(trainer, "test", which)
        _write_run_plots(trainer, metrics)
    except TrainingInterrupted as e:
        e.run_dir = rd.path
        _mark(rd, status="interrupted", reason=str(e), signal=e.name, step=e.step)
        raise
    except KeyboardInterrupt:
        _mark(rd, status="interrupted", reason="KeyboardInterrupt", step=trainer.step)
        raise
    except BaseException as e:
        _mark(rd, status="failed", error=f"{type(e).__name__}: {e}", step=trainer.step)
        raise
    rd.update_env(status="finished", end=_now(), stop_reason=trainer.stop_reason, epochs_run=trainer.epoch)
    if recipe.output.report:
        from .track.report import write_report

        write_report(rd.path)
    return Run(rd, metrics, trainer.history, trainer.stop_reason)


def _write_run_plots(trainer, test_metrics: dict[str, Any]) -> None:
    """Curves and LR plots from metrics.jsonl; the final test metrics into TensorBoard."""
    rd, recipe = trainer.run_dir, trainer.recipe
    if recipe.output.plots:
        plot_curves(rd.metrics(), rd.plot("curves.png"), title=recipe.name)
        records = rd.metrics()
        save_png(lr_figure(records, scheduled_lrs(recipe, records)), rd.plot("lr.png"))
    if "tensorboard" in recipe.output.trackers:
        from .track.tensorboard import log_split_metrics

        log_split_metrics(rd.path, "test", test_metrics, trainer.epoch)


def _mark(rd: RunDir, **fields: Any) -> None:
    """Record how the run ended; failing to (disk full) must not hide the error that ended it."""
    try:
        rd.update_env(end=_now(), **fields)
    except (OSError, ValueError):
        pass


def evaluate_trainer(trainer, split: str, checkpoint: str) -> dict[str, Any]:
    """The full metric set of the trainer's current weights on `split`, written to eval/<split>.json
    (with the raw outputs and plots; see track/evaluation.py). The end of training and `evaluate()`
    both come through here, so they report the same numbers (and the checkpoint's own epoch)."""
    from .track.evaluation import write_evaluation

    return write_evaluation(trainer, split, checkpoint, _checkpoint_epoch(trainer.run_dir, checkpoint))


def evaluate(run_dir: str | Path, split: str = "test", checkpoint: str = "best") -> dict[str, Any]:
    """Rebuild the run's data and model from its recipe, load a checkpoint, and evaluate a split."""
    from .train import Trainer

    rd = RunDir.open(run_dir)
    if not (rd.checkpoint(checkpoint) / "model.safetensors").is_file():
        have = sorted(p.name for p in (rd.path / "checkpoints").glob("*") if not p.name.startswith("."))
        raise RunDirError(f"{rd.path}: no {checkpoint!r} checkpoint (have: {', '.join(have) or 'none'})")
    raw = read_yaml(rd.recipe_path)
    vocab = rd.path / "data" / "vocab.json"
    if vocab.is_file():  # a text run: read the data with the vocabulary it was trained with
        raw.setdefault("data", {})["vocab"] = str(vocab)
    recipe = load_recipe(raw)
    from .data import build_data, load_preprocess_state

    fitted = load_preprocess_state(rd.path)  # the run's own normalization statistics, not refitted ones
    bundle = build_data(recipe.data, recipe.seed, fitted) if fitted else None
    trainer = Trainer(recipe, run_dir=rd, progress=False, bundle=bundle)
    trainer.load_weights(checkpoint)
    epoch = _checkpoint_epoch(rd, checkpoint)
    trainer.epoch = epoch
    return evaluate_trainer(trainer, split, checkpoint)


def report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the run's self-contained report.html (or `output`); evaluates the test split first
    when no eval/test.json exists yet, so a run directory alone is enough."""
    from .track.report import write_report

    rd = RunDir.open(run_dir)
    if not (rd.path / "eval" / "test.json").is_file():
        which = next((c for c in ("best", "last") if (rd.checkpoint(c) / "model.safetensors").is_file()), None)
        if which is not None:
            evaluate(rd.path, "test", which)
    return write_report(rd.path, output)


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
