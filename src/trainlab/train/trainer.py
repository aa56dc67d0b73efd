"""The Trainer: runs epochs of steps over the components build.py made, validates, checkpoints.

The hot loop (`_train_epoch`) fits on one screen. It keeps running sums on the device and
syncs only every `train.log_every` steps (for the progress bar) and at the end of an epoch.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..build import Parts, build_parts, set_threads
from ..data import DataBundle
from ..metrics import (check_monitors, compute_metrics, predict, resolve_monitor,
                       validation_metrics)
from ..optim import set_train_mode
from ..optim.lean import LeanStep
from ..optim.schedules import base_lr, epoch_end
from ..perf import mfu, peak_flops, peak_for, threads_for_step, train_step_flops
from ..precision import autocast, grad_scaler, precision_dtype, resolve_precision
from ..recipe import Recipe, check_monitor_names, monitors
from ..track.rundir import RunDir
from ..track.trackers import build_trackers
from .best import Selection
from .callbacks import Callback, EarlyStopping, ProgressReporter
from .checkpoint import CheckpointWriter, load_checkpoint_state, load_model_weights, rng_state, set_rng_state
from .determinism import set_determinism
from .nonfinite import NonFiniteGuard, Rollback, weights_finite
from .recovery import handle_nonfinite
from .running import RunningCorrect
from .signals import GracefulSignals


class Trainer:
    """Trains the recipe's model. `fit()` returns the final metrics; everything lands in `run_dir`."""

    def __init__(self, recipe: Recipe, run_dir: RunDir | None = None, callbacks: list[Callback] | None = None,
                 bundle: DataBundle | None = None, progress: bool = True, parts: Parts | None = None):
        """`parts`: the components to train (build.py); without them they are built from the recipe
        (over `bundle` when given, else over the recipe's data)."""
        self.recipe = recipe
        self.run_dir = run_dir
        cfg = recipe.train
        set_threads(recipe)  # reported in env.json and the summary
        self.determinism = set_determinism(cfg.deterministic)
        check_monitor_names(recipe)  # a monitor trainlab never logs: before any data is read
        if parts is None:
            parts = build_parts(recipe, bundle)
        self.parts = parts
        self.device, self.bundle, self.model = parts.device, parts.bundle, parts.model
        self.task = self.bundle.info.task
        self.channels_last = parts.channels_last
        self.loss_fn, self.optimizer, self.loader, self.augment = (parts.loss_fn, parts.optimizer, parts.loader,
                                                                   parts.augment)
        self.schedule, self.steps_per_epoch, self.steps_schedule = (parts.schedule, parts.steps_per_epoch,
                                                                    parts.steps_schedule)
        self.closure_step, self.l1_params = parts.closure_step, parts.l1_params
        self._amp, self._amp_for = None, None  # _autocast()'s context and the precision it is for
        self._clips = cfg.grad_clip is not None or cfg.grad_clip_value is not None
        # batches need a copy or a layout change: off the CPU (a copy to the device) or channels_last
        self._prepares = self.channels_last or self.device.type != "cpu"
        self.lean = LeanStep(self.optimizer, cfg.lean_step)  # the fused kernel without step()'s wrapper
        self.epochs = cfg.epochs
        es = recipe.early_stopping
        self.monitor = resolve_monitor(recipe, self.task, self.bundle.val is not None)
        info = self.bundle.info  # every monitor is one this run logs: found now, not after an epoch
        check_monitors(monitors(recipe), recipe, self.task, self.bundle.val is not None, info.num_classes,
                       bool(info.extra.get("sequence_targets")))
        self.restore_best = es.restore_best if es is not None else True  # evaluate `best`, not `last`
        self.lr_used = base_lr(self.optimizer)  # the LR of the latest optimizer step, for the logs
        self.callbacks: list[Callback] = []
        if progress:
            self.callbacks.append(ProgressReporter())
        if recipe.early_stopping is not None:
            es = recipe.early_stopping
            self.callbacks.append(EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta))
        self.callbacks += build_trackers(recipe)  # output.trackers (track/trackers.py)
        self.callbacks += callbacks or []
        # counters and state
        self.epoch = 0             # epochs completed
        self.step = 0              # optimizer steps taken
        self.batches_done = 0
        self.best: float | None = None  # the monitored value of checkpoints/best
        # which epoch is best: ties within one validation sample go to the lower val.loss (best.py)
        self.selection = Selection(self.monitor, len(self.bundle.val) if self.bundle.val is not None else None)
        self.should_stop = False
        self.stop_reason = ""
        self.history: list[dict[str, Any]] = []
        # reliability (see recovery.py): non-finite guard, signals, mid-epoch resume, events to re-log
        self.guard = NonFiniteGuard(cfg.on_nonfinite, cfg.nonfinite_skips, cfg.nonfinite_rollbacks,
                                    immediate=self.device.type == "cpu")
        self.signals = GracefulSignals()
        self._epoch_sums: dict[str, Any] | None = None
        self._events: list[dict[str, Any]] = []
        # MFU (perf.py): FLOPs per sample of a training step and the device's peak, measured in fit()
        self.flops_per_sample: float | None = None
        self.peak_flops: float | None = None
        self.peak_reprobed = False  # a run close to the peak probes again, once (perf.peak_for)
        self.compiled = False
        self.pin_memory = cfg.pin_memory and self.device.type == "cuda"
        # the autocast precision; `auto` on a CPU may become bf16 once fit() has measured the step
        self.precision = resolve_precision(cfg.precision, self.device)
        # fp16: a GradScaler scales the loss (precision.py); None in fp32/bf16. L-BFGS's closure cannot take one
        self.scaler = grad_scaler(self.precision, self.device, recipe.optim.name if self.closure_step else None)
        self.checkpoints = CheckpointWriter()  # writes on a background thread; see checkpoint.py

    # --- the loop ------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        if self.flops_per_sample is None:
            self._measure_cost()  # before the clock starts: one counted step and a cached probe
        if self.recipe.train.compile and not self.compiled:
            self.model.compile()  # in place, so parameter names (and checkpoints) stay the same
            self.compiled = True
        self._t_start = time.perf_counter()
        for cb in self.callbacks:
            cb.on_fit_start(self)
        self.signals.install()  # SIGINT/SIGTERM: finish the step, checkpoint, raise TrainingInterrupted
        try:
            if self.step == 0:
                self._save()  # step 0: resume and rollback always have a checkpoint to go back to
            while self.epoch < self.epochs and not self.should_stop:
                try:
                    logs = self._train_epoch()
                except Rollback:
                    continue  # back at the last good checkpoint with a lower LR: go on from there
                # schedule-free: validate, checkpoint and leave fit() with the averaged weights
                set_train_mode(self.optimizer, False)
                logs.update(self._validate())
                self.epoch += 1
                logs["epoch"] = self.epoch
                epoch_end(self.schedule, logs)  # reduce_on_plateau sees the validation metric
                self._log_epoch(logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, logs)
                self._checkpoint(logs)
                self._interrupt_if_pending(self.run_dir is not None)
        except BaseException:
            self.checkpoints_on_disk(raise_errors=False)  # the error in flight is the one to report
            raise
        else:
            self.checkpoints_on_disk()
        finally:
            self.signals.restore()
            for cb in self.callbacks:
                cb.on_fit_end(self)
        return self.history[-1] if self.history else {}

    def _train_epoch(self) -> dict[str, Any]:
        cfg, device = self.recipe.train, self.device
        self.model.train()
        set_train_mode(self.optimizer, True)
        classify = self.task == "classification"
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen, t0, n_batches = 0, time.perf_counter(), len(self.loader)
        weights = self._batch_weights(n_batches)
        loss_sum, loss_host, correct, seen, t0 = self._resume_sums(loss_sum, correct, seen, t0)  # mid-epoch resume
        running = RunningCorrect(correct)  # counts in batches of steps: see running.py
        # On a CPU the guard reads every loss as a float anyway (nonfinite.py), so the loss sum is a
        # Python float there: no kernel per step. Elsewhere it is a tensor on the device: no sync.
        guard, on_host = self.guard, self.guard.immediate
        prepare = self.prepare_batch if self._prepares else None
        augment = self.augment if self.augment else None  # no augmentation: not even the call
        for i, (xb, yb) in enumerate(self.loader, start=self.loader.position):
            if prepare is not None:
                xb, yb = prepare(xb, yb)
            if augment is not None:
                xb, yb = augment(xb, yb)  # on the device, own generator; mixup/cutmix make soft targets
            at_step = (i + 1) % cfg.accumulate == 0 or i + 1 == n_batches  # ends an accumulation group
            out, loss, ok = self.train_batch(xb, yb, weights[i], update=at_step)
            if at_step and self.steps_schedule:
                self.schedule.step()
            # running sums stay on the device: no sync here; a non-finite batch stays out of them
            if ok:
                n = len(yb)
                if on_host:
                    loss_host += guard.value * n
                else:
                    loss_sum.add_(loss.detach(), alpha=n)  # one in-place op: each op costs ~5 µs on CPU
                yh = yb.argmax(-1) if classify and yb.is_floating_point() else yb  # soft targets: their argmax
                if classify and yh.ndim == out.ndim - 1:  # class indices; (B, T, C) outputs: one per token
                    running.add(out, yh)
                seen += n
            self.batches_done += 1
            if self.step % cfg.log_every == 0 and (i + 1) % cfg.accumulate == 0:
                # loss.item() is a device sync point: only every log_every steps
                rec = {"loss": loss.item(), "lr": self.lr_used,
                       "samples_per_s": seen / (time.perf_counter() - t0)}
                self._log({"split": "train", "epoch": self.epoch, "step": self.step, **rec})
                for cb in self.callbacks:
                    cb.on_step(self, rec)
            if at_step:  # non-finite policy, step checkpoints, signals
                self._after_step(i + 1 == n_batches, loss_sum, loss_host, running, seen, t0)
        elapsed = time.perf_counter() - t0
        logs = {"train.loss": (float(loss_sum) + loss_host) / max(seen, 1), "train.time": elapsed,
                "train.samples_per_s": seen / max(elapsed, 1e-9), "lr": self.lr_used}
        if classify:
            y = self.bundle.train.y  # targets per sample: 1, or T for per-token targets (B, T)
            per_sample = math.prod(y.shape[1:]) if not y.is_floating_point() else 1
            logs["train.accuracy"] = int(running.flush()) / max(seen * per_sample, 1)
        if self.flops_per_sample:
            logs["train.flops_per_step"] = round(self.flops_per_sample * self.loader.batch_size)
            achieved = self.flops_per_sample * logs["train.samples_per_s"]
            # after the clock stopped: a run at 80% of the cached peak re-probes it (~0.1 s, once)
            self.peak_flops, how = peak_for(achieved, self.peak_flops, self.device,
                                            precision_dtype(self.precision), reprobe=not self.peak_reprobed)
            self.peak_reprobed |= how != "cached"
            logs["train.peak_flops"] = self.peak_flops
            logs["train.mfu"] = mfu(self.flops_per_sample, logs["train.samples_per_s"], self.peak_flops)  # ≤ 1
        return logs

    def _measure_cost(self) -> None:
        """FLOPs per sample of one training step, counted on the first batch of the training split,
        and the device's peak FLOP/s for the training precision (perf.py); both feed `train.mfu`."""
        split, n = self.bundle.train, min(self.recipe.data.batch_size, len(self.bundle.train))
        if n == 0:
            return
        xb, yb = self.prepare_batch(split.x[:n], split.y[:n])
        flops = train_step_flops(self.model, self.loss_fn, xb, yb)
        if flops:
            self.flops_per_sample = flops / n
            step_flops = self.flops_per_sample * self.recipe.data.batch_size
            if self.device.type == "cpu" and self.recipe.train.threads is None:  # a tiny step: one thread
                torch.set_num_threads(threads_for_step(step_flops, torch.get_num_threads()))
            # `auto` on a CPU: bf16 where the measured step makes it pay (precision.py); never fp16
            self.precision = resolve_precision(self.recipe.train.precision, self.device, step_flops)
            self.peak_flops = peak_flops(self.device, precision_dtype(self.precision))

    # --- one batch, one optimizer step ---------------------------------------------------------------
    def prepare_batch(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if xb.device != self.device:
            if self.pin_memory:  # a copy from pinned host memory runs asynchronously to the GPU
                xb, yb = xb.pin_memory(), yb.pin_memory()
            xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb

    def train_batch(self, xb: torch.Tensor, yb: torch.Tensor, weight: float = 1.0,
                    update: bool = True) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Forward and backward one batch, its loss scaled by `weight` (its share of an accumulation
        group); with `update`, then one optimizer step unless the non-finite guard refuses it.
        Returns (outputs, unscaled loss, whether the batch's loss was finite)."""
        if self.closure_step:  # L-BFGS evaluates the batch as often as its line search needs
            first: list[tuple[torch.Tensor, torch.Tensor]] = []

            def closure() -> torch.Tensor:
                self.optimizer.zero_grad(set_to_none=True)
                out, loss, objective = self._forward_backward(xb, yb, 1.0)
                self._clip_grads()
                first.append((out, loss))
                return objective
            self._optimizer_step(closure)
            out, loss = first[0]
            return out, loss, self.guard.watch(loss)
        out, loss, _ = self._forward_backward(xb, yb, weight)
        ok = self.guard.watch(loss)  # non-finite guard; nonfinite.py says where it reads the flag
        if update:
            scaler = self.scaler
            norm = self._clip_grads() if self._clips or scaler is not None else None
            # fp16: an overflowed gradient is the scaler's to handle (it skips the step and lowers the
            # scale), so only a non-finite loss counts as a non-finite step then
            self._optimizer_step(apply=self.guard.step_ok(norm if scaler is None else None))
        return out, loss, ok

    def _autocast(self):
        """The autocast context of `self.precision`, made once (a context per step costs ~3 µs on CPU)."""
        if self._amp_for != self.precision:
            self._amp, self._amp_for = autocast(self.device, self.precision), self.precision
        return self._amp

    def _forward_backward(self, xb, yb, weight: float):
        with self._autocast():
            out = self.model(xb)
            loss = self.loss_fn(out, yb)
        objective = loss * weight if weight != 1.0 else loss
        if self.l1_params:  # once per optimizer step in all: each batch adds its share
            objective = objective + (self.recipe.optim.l1 * weight) * sum(p.abs().sum() for p in self.l1_params)
        if self.scaler is not None:  # fp16: scaled so that small gradients do not underflow
            self.scaler.scale(objective).backward()
        else:
            objective.backward()
        return out, loss, objective.detach()

    def _clip_grads(self) -> torch.Tensor | None:
        """Clip as the recipe says; returns the total gradient norm when clipping by norm computed it.
        With a loss scaler the gradients are unscaled first (always: the clip then sees true gradients,
        and the step after it finds the overflow check already done)."""
        cfg, norm = self.recipe.train, None
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # notes inf/NaN gradients for scaler.step and update
        if cfg.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip, foreach=True)
        if cfg.grad_clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), cfg.grad_clip_value, foreach=True)
        return norm

    def _optimizer_step(self, closure=None, apply: bool = True) -> None:
        self.lr_used = base_lr(self.optimizer)  # a Python float: no device sync
        if self.scaler is not None:  # fp16 (the lean step steps aside: the scaler passes found_inf to the kernel)
            if apply:
                self.scaler.step(self.optimizer)  # skipped if the gradients overflowed
            self.scaler.update()  # lower the scale after an overflow, raise it after a long run without
        elif apply and not (closure is None and self.lean.step()):  # lean.py: same update, less Python
            self.optimizer.step(closure)
        if self.lean.active:
            self.lean.zero_grad()
        else:
            self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    def _batch_weights(self, n_batches: int) -> list[float]:
        """Each batch's share of the samples in its accumulation group, so `accumulate: k` over
        batches of b gives the same update as one batch of k·b (the loss is a per-sample mean)."""
        k = self.recipe.train.accumulate
        if k == 1:
            return [1.0] * n_batches
        size, n = self.loader.batch_size, len(self.loader.split)
        sizes = [min(size, n - b * size) for b in range(n_batches)]
        return [sizes[b] / sum(sizes[b - b % k:b - b % k + k]) for b in range(n_batches)]

    def _validate(self) -> dict[str, Any]:
        if self.bundle.val is None:
            return {}
        return {f"val.{k}": v for k, v in self.evaluate_split("val").items() if k != "samples"}

    def evaluate_split(self, split: str) -> dict[str, Any]:
        s = self.bundle.split(split)
        out = predict(self.model, s, self.recipe.data.eval_batch_size, self.device, self.channels_last,
                      self.recipe.train.precision)
        names = validation_metrics(self.recipe, self.task)
        scaler = self.bundle.target_scaler
        if scaler is None:
            return compute_metrics(out, s.y, self.task, self.loss_fn.cpu(), self.bundle.info.num_classes, names)
        # standardized regression targets: the loss as trained (scaled units), the metrics in original units
        y = s.y.cpu()
        m = compute_metrics(scaler.unscale(out), scaler.unscale(y), self.task, self.loss_fn.cpu(), None, names)
        m["loss"] = float(self.loss_fn.cpu()(out, y))
        return m

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

    # --- state and checkpoints (recovery.py has the policies that use them) ----------------------
    def _callback_keys(self) -> list[str]:
        """Callbacks keyed by class name (#2, #3 for repeats), so state survives a changed callback list."""
        keys, seen = [], {}
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
        return keys

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "loader": self.loader.state_dict(), "rng": rng_state(),
            "trainer": {"epoch": self.epoch, "step": self.step, "batches_done": self.batches_done,
                        "best": self.best, "monitor": self.monitor, "should_stop": self.should_stop,
                        "stop_reason": self.stop_reason, "history": self.history,
                        "selection": self.selection.state_dict()},
            "callbacks": {k: cb.state_dict() for k, cb in zip(self._callback_keys(), self.callbacks)},
            "guard": self.guard.state_dict(), "augment": self.augment.state_dict(),
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any], guard: bool = True) -> None:
        """Everything but the weights; `guard=False` keeps the guard's own counts (a rollback)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.loader.load_state_dict(state["loader"])
        t = state["trainer"]
        self.epoch, self.step, self.batches_done, self.best = t["epoch"], t["step"], t["batches_done"], t["best"]
        self.should_stop, self.stop_reason, self.history = t["should_stop"], t["stop_reason"], list(t["history"])
        self.selection.load_state_dict(t.get("selection"), t["best"])  # older checkpoints: the best value only
        for key, cb in zip(self._callback_keys(), self.callbacks):
            if key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][key])
        if guard:
            self.guard.load_state_dict(state["guard"])
        self._epoch_sums = state.get("epoch_sums")  # None at an epoch end
        if "augment" in state:
            self.augment.load_state_dict(state["augment"])
        if self.scaler is not None and state.get("scaler"):  # older checkpoints, fp32/bf16 runs: none saved
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])  # last: nothing above may draw from the restored streams

    def load_checkpoint(self, folder: Path, guard: bool = True) -> dict[str, Any]:
        """Restore weights and state from a checkpoint folder; metrics.jsonl is cut back to that point."""
        self.checkpoints_on_disk()
        load_model_weights(self.model, Path(folder) / "model.safetensors")
        state = load_checkpoint_state(folder)
        self.load_state_dict(state, guard)
        if self.run_dir is not None:
            self.run_dir.truncate_metrics(int(state.get("metrics_bytes", 0)))
        return state

    def _resume_sums(self, loss_sum, correct, seen: int, t0: float):
        """The epoch's running sums: fresh ones, or those saved by a mid-epoch checkpoint."""
        sums, self._epoch_sums = self._epoch_sums, None
        if sums is None:
            return loss_sum, 0.0, correct, seen, t0
        return (sums["loss_sum"].to(self.device), float(sums.get("loss_host", 0.0)), sums["correct"].to(self.device),
                int(sums["seen"]), t0 - float(sums["elapsed"]))

    def _after_step(self, epoch_end: bool, loss_sum, loss_host: float, running: RunningCorrect, seen: int,
                    t0: float) -> None:
        """At each optimizer-step boundary: non-finite policy, `checkpoint_every`, a pending signal."""
        cfg = self.recipe.train
        self.signals.step = self.step
        verdict = self.guard.decide(sync_point=self.step % cfg.log_every == 0)
        if verdict is not None:
            handle_nonfinite(self, *verdict)  # may raise Rollback or NonFiniteError
        every = cfg.checkpoint_every
        # at an epoch end the epoch's own checkpoint follows, after validation; none amid non-finite
        # steps, so that a rollback goes back to before the trouble began
        due = every and self.step % every == 0 and not epoch_end and not self.guard.consecutive
        if self.signals.pending or due:
            sums = {"loss_sum": loss_sum, "loss_host": loss_host, "correct": running.flush(), "seen": seen,
                    "elapsed": time.perf_counter() - t0}
            saved = self._save(epoch_sums=sums)
            self._interrupt_if_pending(saved)

    def _interrupt_if_pending(self, saved: bool) -> None:
        """On a pending signal, raise TrainingInterrupted. It says the checkpoint just saved is written
        only once the background write has finished, and says so otherwise."""
        if not self.signals.pending:
            return
        failed = None
        if saved:
            try:
                self.checkpoints.wait()
            except Exception as e:  # `last` on disk is still the checkpoint before this one
                failed = f"{type(e).__name__}: {e}"
        self.signals.raise_if_pending(self.step, saved, failed)

    def _save(self, epoch_sums: dict[str, Any] | None = None, best: bool = False) -> bool:
        """Write checkpoints/last (the one it replaces becomes `previous`), and `best`; never non-finite weights."""
        if self.run_dir is None:
            return False
        if self.guard.poll() or not weights_finite(self.model):  # a sync point: checkpoints are rare
            handle_nonfinite(self, self.guard.escalate(can_skip=False), "weights")
        state = self.state_dict()
        state["epoch_sums"] = epoch_sums
        state["metrics_bytes"] = self.run_dir.metrics_size()  # resume cuts metrics.jsonl back to here
        rd = self.run_dir
        self.checkpoints.save(rd.checkpoint("last"), self.model, state, previous=rd.checkpoint("previous"),
                              best=rd.checkpoint("best") if best else None)
        self._events.clear()
        return True

    def checkpoints_on_disk(self, raise_errors: bool = True) -> None:
        """Wait until every checkpoint saved so far is written (they are written in the background)."""
        try:
            self.checkpoints.close()
        except Exception:
            if raise_errors:
                raise

    def _checkpoint(self, logs: dict[str, Any]) -> None:
        # amid non-finite steps keep the last good checkpoint, unless a signal asks for one
        if self.run_dir is None or (self.guard.consecutive and not self.signals.pending):
            return
        improved = self.selection.consider(logs)  # ties within the metric's resolution: lower val.loss
        if improved:
            self.best = logs.get(self.monitor)
        try:
            self._save(best=improved)
        except Rollback:
            return  # state is back at the last good checkpoint: fit's loop goes on from there
        if improved:  # env.json says which epoch is best and why, also for a run that dies later
            self.run_dir.update_env(best=self.best_summary())

    def best_summary(self) -> dict[str, Any] | None:
        """Which epoch checkpoints/best holds and why (env.json's `best`; see best.py)."""
        return self.selection.summary(self.history)

    def _event(self, record: dict[str, Any], message: str) -> None:
        """A reliability event: one record in metrics.jsonl (split "event") and one line for the user."""
        self._events.append(record)
        self._log(record)
        self._say(message)

    def _say(self, message: str) -> None:
        print(f"trainlab: {message}", file=sys.stderr, flush=True)

    def load_weights(self, which: str) -> Path:
        path = self.run_dir.checkpoint(which) / "model.safetensors"
        load_model_weights(self.model, path)
        return path
