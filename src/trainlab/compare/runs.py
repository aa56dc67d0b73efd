"""One comparison run (a Trainer without a run directory, a callback that records its curve), and
running many of them in this process or in K spawned worker processes.

A run is a pure function of its spec (recipe, optimizer, LR, seed): on the CPU it gives the same
numbers whichever process runs it, so 1 or K workers give the same results (wall times aside).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from ..train.callbacks import Callback

# data built once per (data section, seed) in each process and shared by every optimizer's run
_DATA_CACHE: dict[str, Any] = {}


class CurveRecorder(Callback):
    """Per epoch: steps, train loss, the validation metrics and cumulative training seconds; and where
    the target was first reached. With `eval_every` (the run's `train.log_every`), the validation
    split is also checked every that many steps, so time to target is measured finer than an epoch.

    A check evaluates in eval mode without gradients and restores the training mode: it draws no
    random numbers and changes no weight, so the run trains exactly as it would without checks. Its
    time is excluded from the training seconds, like the trainer's own validation.
    """

    def __init__(self, target: dict[str, Any] | None, data_digest: str = "", eval_every: int = 0):
        self.target, self.data_digest, self.eval_every = target, data_digest, eval_every
        self.curve: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        self.reached: dict[str, Any] | None = None
        self.train_seconds = 0.0
        self.fingerprint: dict[str, str] = {}

    def on_fit_start(self, trainer) -> None:
        # what "fair by construction" promises, as hashes: the first epoch's batch order and the
        # initial weights (same for every optimizer of a seed), and the training data itself
        perm = trainer.loader.permutation(0)
        self.fingerprint = {
            "data_order": _digest([perm]),
            "initial_weights": _digest([p.detach() for p in trainer.model.state_dict().values()]),
            "train_data": self.data_digest,
        }
        self._epoch_start, self._eval_seconds = time.perf_counter(), 0.0

    def on_step(self, trainer, logs: dict[str, Any]) -> None:
        if not self.eval_every or trainer.bundle.val is None or trainer.step % trainer.steps_per_epoch == 0:
            return  # an epoch's last step: validation follows at the epoch end
        from ..optim import set_train_mode

        t0 = time.perf_counter()
        was_training = trainer.model.training
        set_train_mode(trainer.optimizer, False)
        with torch.no_grad():
            values = {f"val.{k}": _num(v) for k, v in trainer.evaluate_split("val").items() if k != "samples"}
        trainer.model.train(was_training)
        set_train_mode(trainer.optimizer, True)
        t1 = time.perf_counter()
        seconds = self.train_seconds + (t0 - self._epoch_start) - self._eval_seconds
        self._eval_seconds += t1 - t0
        self._check({"step": trainer.step, "epoch": trainer.step / trainer.steps_per_epoch, "seconds": seconds,
                     **values})

    def on_epoch_end(self, trainer, logs: dict[str, Any]) -> None:
        self.train_seconds += logs["train.time"] - self._eval_seconds
        point = {"epoch": logs["epoch"], "step": trainer.step, "seconds": self.train_seconds,
                 **{k: _num(v) for k, v in logs.items() if k.startswith(("train.", "val."))
                    and k not in MEASURED}}
        self.curve.append(point)
        self._check(point)
        self._epoch_start, self._eval_seconds = time.perf_counter(), 0.0

    def _check(self, point: dict[str, Any]) -> None:
        if self.eval_every:
            self.checks.append({k: v for k, v in point.items() if k in ("step", "epoch", "seconds")
                                or k.startswith("val.")})
        t = self.target
        if t is not None and self.reached is None:
            v = point.get(t["metric"])
            if v is not None and math.isfinite(v) and (v >= t["value"] if t["mode"] == "max" else v <= t["value"]):
                self.reached = {"epoch": point["epoch"], "step": point["step"], "seconds": point["seconds"]}


# speeds and timings the trainer logs: they differ from run to run, so the curve leaves them out
MEASURED = ("train.time", "train.samples_per_s", "train.mfu", "train.peak_flops")


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def _digest(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _bundle(recipe) -> tuple[Any, str]:
    """The recipe's DataBundle and a hash of its training split, built once per process and seed."""
    key = json.dumps([recipe.data.model_dump(mode="json"), recipe.seed], sort_keys=True)
    if key not in _DATA_CACHE:
        from ..data import build_data

        _DATA_CACHE.clear()  # one seed's data at a time: runs come grouped by seed
        bundle = build_data(recipe.data, recipe.seed)
        _DATA_CACHE[key] = (bundle, _digest([bundle.train.x, bundle.train.y]))
    return _DATA_CACHE[key]


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one (optimizer, LR, seed) run for its budget; returns its record (see compare.json).

    A run whose loss or gradients go non-finite ends there with status "diverged"; its curve so far
    is kept. `spec["lr_find"]` runs the LR range test instead of training.
    """
    from ..recipe import load_recipe
    from ..train import Trainer
    from ..train.nonfinite import NonFiniteError

    recipe = load_recipe(spec["recipe"])
    bundle, digest = _bundle(recipe)
    rec = CurveRecorder(spec.get("target"), digest, spec.get("eval_every", 0))
    trainer = Trainer(recipe, bundle=bundle, callbacks=[rec], progress=False)
    out: dict[str, Any] = {"optimizer": spec["optimizer"], "lr": spec["lr"], "seed": recipe.seed,
                           "phase": spec["phase"]}
    if spec.get("lr_find"):
        from ..lr_find import lr_range_test

        res = lr_range_test(trainer, **spec["lr_find"])
        # the minimum / 10 rule: on short, noisy sweeps the steepest-descent point often lands in the
        # flat start of the curve, far below a usable LR
        chosen = res.min_div10 or res.steepest
        return {**out, "status": "done", "lr": chosen, "lr_find": {
            "lrs": res.lrs, "smoothed": res.smoothed, "steepest": res.steepest, "min_div10": res.min_div10,
            "stopped": res.stopped}}
    t0 = time.perf_counter()
    status = "done"
    try:
        trainer.fit()
    except NonFiniteError:
        status = "diverged"
    wall = time.perf_counter() - t0
    metric = spec["metric"]
    values = [p[metric] for p in rec.curve if isinstance(p.get(metric), float) and math.isfinite(p[metric])]
    best = (max(values) if spec["mode"] == "max" else min(values)) if values else None
    final = rec.curve[-1].get(metric) if rec.curve and status == "done" else None
    steps = trainer.step
    return {**out, "status": status, "steps": steps, "epochs": trainer.epoch,
            "final": final, "best": best,
            "final_train_loss": rec.curve[-1]["train.loss"] if rec.curve and status == "done" else None,
            "reached": rec.reached is not None,
            "steps_to_target": rec.reached["step"] if rec.reached else None,
            "epochs_to_target": rec.reached["epoch"] if rec.reached else None,
            "seconds_to_target": rec.reached["seconds"] if rec.reached else None,
            "seconds": wall, "train_seconds": rec.train_seconds,
            "ms_per_step": 1000 * rec.train_seconds / steps if steps else None,
            "threads": torch.get_num_threads(), "fingerprint": rec.fingerprint, "curve": rec.curve,
            "checks": rec.checks}


def make_pool(workers: int):
    """K spawned worker processes for the whole comparison (each imports torch once), or None for 1."""
    if workers <= 1:
        return None
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))


def run_all(specs: list[dict[str, Any]], pool=None,
            say: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every spec, here (no pool) or in the pool's processes; results in spec order."""
    results: list[dict[str, Any] | None] = [None] * len(specs)
    if pool is None:
        for i, spec in enumerate(specs):
            results[i] = run_one(spec)
            if say:
                say(results[i])
        return results  # type: ignore[return-value]
    from concurrent.futures import as_completed

    futures = {pool.submit(run_one, spec): i for i, spec in enumerate(specs)}
    try:
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if say:
                say(results[futures[fut]])
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    return results  # type: ignore[return-value]
