"""TensorBoard logging: a trainer callback writing scalars and the recipe to <run_dir>/tb/.

Tags (x axis in brackets):
  step/loss, step/lr, step/samples_per_s     [optimizer step]  every `train.log_every` steps
  train/*, val/* (loss and train.metrics)    [epoch]
  epoch/lr, epoch/elapsed_s                  [epoch]
  test/*                                     [last epoch]      after the end-of-training evaluation
  recipe (text)                                                the resolved recipe YAML

The step values come from the record the trainer has already synced for its progress bar, so
the logger adds no device sync to the loop; SummaryWriter writes files on its own thread.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..events import Callback

TB_DIR = "tb"


def _writer(run_dir_path: Path):
    # imported here: tensorboard costs ~1 s to import and only runs that log need it
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(Path(run_dir_path) / TB_DIR))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def epoch_tag(key: str) -> str:
    """metrics key -> TensorBoard tag: 'val.loss' -> 'val/loss', 'lr' -> 'epoch/lr'."""
    if "." in key:
        return key.replace(".", "/", 1)
    return {"time": "epoch/elapsed_s"}.get(key, f"epoch/{key}")


class TensorBoardLogger(Callback):
    """Losses, metrics, LR and throughput as TensorBoard scalars; the recipe as text."""

    def __init__(self) -> None:
        self.writer = None

    def on_fit_start(self, trainer) -> None:
        if trainer.run_dir is None:
            return
        self.writer = _writer(trainer.run_dir.path)
        # TensorBoard renders text as markdown: indent four spaces to keep the YAML a code block
        yaml_text = "\n".join("    " + line for line in trainer.recipe.to_yaml().splitlines())
        self.writer.add_text("recipe", yaml_text, global_step=trainer.epoch)

    def on_step(self, trainer, logs: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for k in ("loss", "lr", "samples_per_s"):
            if _number(logs.get(k)):
                self.writer.add_scalar(f"step/{k}", logs[k], trainer.step)

    def on_epoch_end(self, trainer, logs: dict[str, Any]) -> None:
        if self.writer is None:
            return
        epoch = logs["epoch"]
        for k, v in logs.items():
            if k != "epoch" and _number(v):
                self.writer.add_scalar(epoch_tag(k), v, epoch)
        self.writer.flush()  # an epoch's scalars are on disk even if the run dies next epoch

    def on_fit_end(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def log_split_metrics(run_dir_path: Path, split: str, metrics: dict[str, Any], step: int) -> None:
    """Write the scalar metrics of an evaluation (e.g. the final test split) as `<split>/<name>`."""
    w = _writer(run_dir_path)
    try:
        for k, v in metrics.items():
            if _number(v) and k not in ("epoch", "seconds", "samples"):
                w.add_scalar(f"{split}/{k}", v, step)
    finally:
        w.close()
