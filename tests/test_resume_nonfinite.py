"""The non-finite guard: a NaN injected into the loss at chosen steps, and what each policy does."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import trainlab
from trainlab.track.rundir import RunDir
from trainlab.train.callbacks import Callback
from trainlab.train.checkpoint import load_checkpoint_state
from trainlab.train.nonfinite import NonFiniteError


def recipe(tmp_path, **train) -> dict:
    """y = 2x regression, 14 steps an epoch, a checkpoint every 4 steps, cosine LR (so the LR varies)."""
    return {
        "name": "nan", "seed": 2,
        "data": {"source": "synthetic:linear", "n": 600, "batch_size": 32},
        "model": {"name": "mlp", "widths": [16], "dropout": 0.1},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"name": "cosine"},
        "train": {"epochs": 3, "log_every": 2, "checkpoint_every": 4, "threads": 1, **train},
        "output": {"root": str(tmp_path), "plots": False},
    }


class NaNAt(Callback):
    """Makes the training loss NaN at optimizer steps (1-based) `steps`, `times` times each."""

    def __init__(self, steps, times: int = 1, deferred: bool = False):
        self.left = {s: times for s in steps}
        self.deferred = deferred
        self.params_at: dict[int, list[torch.Tensor]] = {}  # weights as each step began

    def on_fit_start(self, trainer):
        inner, cb = trainer.loss_fn, self
        if self.deferred:  # how the guard works on an accelerator: flag read only at sync points
            trainer.guard.immediate = False

        class Poisoned(nn.Module):
            def forward(self, out, y):
                loss = inner(out, y)
                step = trainer.step + 1
                if not trainer.model.training:
                    return loss
                cb.params_at[step] = [p.detach().clone() for p in trainer.model.parameters()]
                if cb.left.get(step, 0) > 0:
                    cb.left[step] -= 1
                    return loss * float("nan")
                return loss

        trainer.loss_fn = Poisoned()


def events(run_dir) -> list[tuple]:
    out = []
    for r in RunDir(run_dir).metrics():
        if r.get("split") == "event":
            out.append((r["event"], r["step"], r.get("action", r.get("from_step"))))
    return out


def train_steps(run_dir) -> list[int]:
    return [r["step"] for r in RunDir(run_dir).metrics() if r.get("split") == "train" and "time" not in r]


def last_state(run_dir) -> dict:
    return load_checkpoint_state(run_dir / "checkpoints" / "last")


def lr_at(run_dir, step) -> float:
    return next(r["lr"] for r in RunDir(run_dir).metrics() if r.get("split") == "train" and r["step"] == step)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    return trainlab.train(recipe(tmp), run_dir=tmp / "clean", progress=False)


def test_skip_leaves_the_weights_untouched_and_goes_on(tmp_path, capfd):
    nan = NaNAt([6])
    run = trainlab.train(recipe(tmp_path, on_nonfinite="skip"), run_dir=tmp_path / "r", progress=False,
                         callbacks=[nan])
    for before, after in zip(nan.params_at[6], nan.params_at[7]):
        assert torch.equal(before, after)  # step 6 was not applied
    assert not any(torch.equal(a, b) for a, b in zip(nan.params_at[7], nan.params_at[8]))  # step 7 was
    assert events(run.path) == [("nonfinite", 6, "skip")]
    assert last_state(run.path)["guard"]["skipped"] == 1
    assert math.isfinite(run.metrics["loss"]) and run.metrics["r2"] > 0.5
    assert "non-finite loss at step 6 (epoch 1): step skipped (1 in a row, at most 3)" in capfd.readouterr().err


def test_rollback_goes_back_to_the_last_checkpoint_with_half_the_lr(clean, tmp_path, capfd):
    run = trainlab.train(recipe(tmp_path, on_nonfinite="rollback"), run_dir=tmp_path / "r", progress=False,
                         callbacks=[NaNAt([10])])
    assert events(run.path) == [("nonfinite", 10, "rollback"), ("rollback", 8, 10)]
    steps = train_steps(run.path)
    assert steps == sorted(set(steps))  # metrics.jsonl cut back at the rollback: no step logged twice
    assert lr_at(run.path, 8) == lr_at(clean.path, 8)
    for s in (10, 12, 20, 40):
        assert lr_at(run.path, s) == pytest.approx(lr_at(clean.path, s) / 2, rel=1e-12)
    assert last_state(run.path)["guard"]["rollbacks"] == 1
    assert json.loads((run.path / "env.json").read_text())["status"] == "finished"
    assert "rolled back from step 10 to checkpoints/last (step 8)" in capfd.readouterr().err


def test_stop_ends_the_run_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteError, match=r"non-finite loss at step 5; stopped \(train.on_nonfinite: stop"):
        trainlab.train(recipe(tmp_path, on_nonfinite="stop"), run_dir=tmp_path / "r", progress=False,
                       callbacks=[NaNAt([5])])
    env = json.loads((tmp_path / "r" / "env.json").read_text())
    assert env["status"] == "failed" and "NonFiniteError: non-finite loss at step 5" in env["error"]
    assert events(tmp_path / "r") == [("nonfinite", 5, "stop")]
    state = last_state(tmp_path / "r")
    assert state["trainer"]["step"] == 4
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(str(tmp_path / "r/checkpoints/last/model.safetensors")).values())


def test_default_policy_skips_then_rolls_back_then_stops(tmp_path):
    """A NaN that never goes away: skip 3 in a row, roll back (LR halved), skip 3 again, stop."""
    with pytest.raises(NonFiniteError, match="non-finite loss at step 13; stopped"):
        trainlab.train(recipe(tmp_path), run_dir=tmp_path / "r", progress=False,
                       callbacks=[NaNAt([10, 11, 12, 13], times=99)])
    assert events(tmp_path / "r") == [
        ("nonfinite", 10, "skip"), ("nonfinite", 11, "skip"), ("nonfinite", 12, "skip"),
        ("nonfinite", 13, "rollback"), ("rollback", 8, 13),
        ("nonfinite", 10, "skip"), ("nonfinite", 11, "skip"), ("nonfinite", 12, "skip"),
        ("nonfinite", 13, "stop")]


def test_deferred_detection_rolls_back_at_the_next_sync_point(clean, tmp_path):
    """The accelerator path: no per-step read, so the bad update lands and is undone by a rollback."""
    run = trainlab.train(recipe(tmp_path, log_every=4), run_dir=tmp_path / "r", progress=False,
                         callbacks=[NaNAt([5], deferred=True)])
    assert events(run.path) == [("nonfinite", 8, "rollback"), ("rollback", 4, 8)]
    assert math.isfinite(run.metrics["loss"]) and run.metrics["r2"] > 0.5
    assert lr_at(run.path, 12) == pytest.approx(lr_at(clean.path, 12) / 2, rel=1e-12)
