"""Callbacks see the trainer at a few events: fit start, every log_every steps, epoch end, fit end.

The `Callback` base class (the event protocol) lives in trainlab.events and is re-exported here."""
from __future__ import annotations

import math
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..events import Callback
from ..metrics import higher_is_better

__all__ = ["Callback", "EarlyStopping", "ProgressReporter"]


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs."""

    def __init__(self, monitor: str, mode: str = "auto", patience: int = 3, min_delta: float = 0.0):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.maximize = higher_is_better(monitor) if mode == "auto" else mode == "max"
        self.best: float | None = None
        self.bad_epochs = 0

    def on_epoch_end(self, trainer, logs):
        if self.monitor not in logs:
            from ..errors import RecipeError

            raise RecipeError(f"early_stopping.monitor: {self.monitor!r} is not logged; "
                              f"logged: {', '.join(sorted(k for k in logs if '.' in k))}")
        value = logs[self.monitor]
        better = self.best is None or (value > self.best + self.min_delta if self.maximize
                                       else value < self.best - self.min_delta)
        if better:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                trainer.stop_reason = (f"early stopping: {self.monitor} did not improve for "
                                       f"{self.bad_epochs} epochs (best {self.best:.4f})")
                trainer.should_stop = True

    def state_dict(self):
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


class ProgressReporter(Callback):
    """A rich progress bar on a terminal; one plain line per epoch otherwise."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.live = self.console.is_terminal
        if not self.live:  # logs and pipes: one line per epoch, never wrapped at 80 columns
            self.console.soft_wrap = True
        self.progress: Progress | None = None

    def on_fit_start(self, trainer):
        if self.live:
            self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("loss {task.fields[loss]}  {task.fields[speed]} samples/s"),
                                     TimeRemainingColumn(), console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("train", total=trainer.steps_per_epoch * trainer.epochs,
                                               epoch=1, loss="-", speed="-")
        self.t0 = time.perf_counter()

    def on_step(self, trainer, logs):
        if self.progress:
            rate = logs.get("samples_per_s", 0.0)
            self.progress.update(self.task, completed=trainer.batches_done, epoch=trainer.epoch + 1,
                                 loss=f"{logs['loss']:.4f}", speed=f"{rate:,.0f}")

    def on_epoch_end(self, trainer, logs):
        parts = [f"epoch {logs['epoch']}/{trainer.epochs}"]
        for k in ("train.loss", "train.accuracy", "val.loss", "val.accuracy", "val.mse", "val.r2"):
            if k in logs and logs[k] is not None and not (isinstance(logs[k], float) and math.isnan(logs[k])):
                parts.append(f"{k} {logs[k]:.4f}")
        parts.append(f"{logs['train.samples_per_s']:,.0f} samples/s")
        parts.append(f"{logs['time']:.1f}s")
        line = "  ".join(parts)
        if self.progress:
            self.progress.console.print(line, markup=False)  # metric names: never read as markup
        else:
            print(line, file=sys.stdout, flush=True)

    def on_fit_end(self, trainer):
        if self.progress:
            self.progress.stop()
