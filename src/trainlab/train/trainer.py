"""The Trainer: build everything from a recipe, run epochs of steps, validate, checkpoint.

The hot loop (`_train_epoch`) fits on one screen. It keeps running sums on the device and
syncs only every `train.log_every` steps (for the progress bar) and at the end of an epoch.
"""
from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DataBundle, TensorLoader, build_data
from ..losses import build_loss
from ..metrics import autocast, compute_metrics, higher_is_better, predict
from ..models import build_model
from ..optim import build_optimizer, build_schedule
from ..recipe import Recipe
from ..track.rundir import RunDir
from .callbacks import Callback, EarlyStopping, ProgressReporter
from .checkpoint import load_model_weights, rng_state, save_checkpoint


def resolve_device(name: str) -> torch.device:
    """`auto`: cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        from ..errors import RecipeError

        raise RecipeError(f"train.device: {name!r} is not a device (auto, cpu, cuda, cuda:1, mps)") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains the recipe's model. `fit()` returns the final metrics; everything lands in `run_dir`."""

    def __init__(self, recipe: Recipe, run_dir: RunDir | None = None, callbacks: list[Callback] | None = None,
                 bundle: DataBundle | None = None, progress: bool = True):
        self.recipe = recipe
        self.run_dir = run_dir
        cfg = recipe.train
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        seed_everything(recipe.seed)
        self.bundle = bundle if bundle is not None else build_data(recipe.data, recipe.seed)
        info = self.bundle.info
        self.task = info.task
        seed_everything(recipe.seed)  # model init does not depend on how much data loading drew
        self.model = build_model(recipe.model, info).to(self.device)
        self.channels_last = cfg.channels_last and len(info.input_shape) == 3 and any(
            isinstance(m, torch.nn.Conv2d) for m in self.model.modules())
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = build_loss(recipe.loss, info)
        self.optimizer = build_optimizer(recipe.optim, self.model)
        train_split = self.bundle.train.to(self.device) if recipe.data.on_device else self.bundle.train
        self.loader = TensorLoader(train_split, recipe.data.batch_size, shuffle=True, seed=recipe.seed)
        self.epochs = cfg.epochs
        self.steps_per_epoch = math.ceil(len(self.loader) / cfg.accumulate)
        self.schedule = build_schedule(recipe.schedule, self.optimizer, self.steps_per_epoch * self.epochs)
        self.monitor = cfg.monitor if cfg.monitor != "auto" else (
            ("val.accuracy" if self.task == "classification" else "val.loss") if self.bundle.val is not None
            else "train.loss")
        self.callbacks: list[Callback] = []
        if progress:
            self.callbacks.append(ProgressReporter())
        if recipe.early_stopping is not None:
            es = recipe.early_stopping
            self.callbacks.append(EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta))
        self.callbacks += callbacks or []
        # counters and state
        self.epoch = 0             # epochs completed
        self.step = 0              # optimizer steps taken
        self.batches_done = 0
        self.best: float | None = None
        self.should_stop = False
        self.stop_reason = ""
        self.history: list[dict[str, Any]] = []
        self.l1_params = [p for g in self.optimizer.param_groups if g["weight_decay"] > 0 or
                          recipe.optim.decay_bias_and_norm for p in g["params"]] if recipe.optim.l1 > 0 else []
        if recipe.optim.l1 > 0 and not self.l1_params:  # decay policy excluded all: penalize every weight
            self.l1_params = [p for p in self.model.parameters() if p.ndim > 1]

    # --- the loop ------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        self._t_start = time.perf_counter()
        for cb in self.callbacks:
            cb.on_fit_start(self)
        try:
            while self.epoch < self.epochs and not self.should_stop:
                logs = self._train_epoch()
                logs.update(self._validate())
                self.epoch += 1
                logs["epoch"] = self.epoch
                self._log_epoch(logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, logs)
                self._checkpoint(logs)
        finally:
            for cb in self.callbacks:
                cb.on_fit_end(self)
        return self.history[-1] if self.history else {}

    def _train_epoch(self) -> dict[str, Any]:
        cfg, model, opt, device = self.recipe.train, self.model, self.optimizer, self.device
        model.train()
        classify = self.task == "classification"
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen, t0, n_batches = 0, time.perf_counter(), len(self.loader)
        for i, (xb, yb) in enumerate(self.loader):
            if xb.device != device:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(device, cfg.precision):
                out = model(xb)
                loss = self.loss_fn(out, yb)
            total = loss / cfg.accumulate if cfg.accumulate > 1 else loss
            if self.l1_params:
                total = total + self.recipe.optim.l1 * sum(p.abs().sum() for p in self.l1_params)
            total.backward()
            if (i + 1) % cfg.accumulate == 0 or i + 1 == n_batches:
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)
                if cfg.grad_clip_value is not None:
                    torch.nn.utils.clip_grad_value_(model.parameters(), cfg.grad_clip_value, foreach=True)
                opt.step()
                opt.zero_grad(set_to_none=True)
                self.schedule.step()
                self.step += 1
            # running sums stay on the device: no sync here
            loss_sum += loss.detach() * len(yb)
            if classify and yb.ndim == out.ndim - 1:  # class indices; (B, T, C) outputs: one per token
                correct += (out.detach().argmax(-1) == yb).sum()
            seen += len(yb)
            self.batches_done += 1
            if self.step % cfg.log_every == 0 and (i + 1) % cfg.accumulate == 0:
                # loss.item() is a device sync point: only every log_every steps
                rec = {"loss": loss.item(), "lr": self.optimizer.param_groups[0]["lr"],
                       "samples_per_s": seen / (time.perf_counter() - t0)}
                self._log({"split": "train", "epoch": self.epoch, "step": self.step, **rec})
                for cb in self.callbacks:
                    cb.on_step(self, rec)
        elapsed = time.perf_counter() - t0
        logs = {"train.loss": float(loss_sum) / max(seen, 1), "train.time": elapsed,
                "train.samples_per_s": seen / max(elapsed, 1e-9), "lr": self.optimizer.param_groups[0]["lr"]}
        if classify:
            y = self.bundle.train.y  # targets per sample: 1, or T for per-token targets (B, T)
            per_sample = math.prod(y.shape[1:]) if not y.is_floating_point() else 1
            logs["train.accuracy"] = int(correct) / max(seen * per_sample, 1)
        return logs

    def _validate(self) -> dict[str, Any]:
        if self.bundle.val is None:
            return {}
        return {f"val.{k}": v for k, v in self.evaluate_split("val").items() if k != "samples"}

    def evaluate_split(self, split: str) -> dict[str, Any]:
        s = self.bundle.split(split)
        out = predict(self.model, s, self.recipe.data.eval_batch_size, self.device, self.channels_last,
                      self.recipe.train.precision)
        return compute_metrics(out, s.y, self.task, self.loss_fn.cpu(), self.bundle.info.num_classes)

    # --- bookkeeping -----------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if self.run_dir is not None:
            self.run_dir.log(record)

    def _log_epoch(self, logs: dict[str, Any]) -> None:
        logs["time"] = time.perf_counter() - self._t_start
        self.history.append(dict(logs))
        rec_train = {"split": "train", "epoch": logs["epoch"], "step": self.step, "lr": logs["lr"],
                     **{k[6:]: v for k, v in logs.items() if k.startswith("train.")}}
        self._log(rec_train)
        if self.bundle.val is not None:
            self._log({"split": "val", "epoch": logs["epoch"], "step": self.step,
                       **{k[4:]: v for k, v in logs.items() if k.startswith("val.")}})

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if higher_is_better(self.monitor) else value < self.best

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "loader": self.loader.state_dict(), "rng": rng_state(),
            "trainer": {"epoch": self.epoch, "step": self.step, "batches_done": self.batches_done,
                        "best": self.best, "monitor": self.monitor},
            "callbacks": [cb.state_dict() for cb in self.callbacks],
        }

    def _checkpoint(self, logs: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        value = logs.get(self.monitor)
        improved = value is not None and self._improved(value)
        if improved:
            self.best = value
        state = self.state_dict()
        save_checkpoint(self.run_dir.checkpoint("last"), self.model, state)
        if improved:
            save_checkpoint(self.run_dir.checkpoint("best"), self.model, state)

    def load_weights(self, which: str) -> Path:
        path = self.run_dir.checkpoint(which) / "model.safetensors"
        load_model_weights(self.model, path)
        return path


def default_threads() -> int:
    return int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))
