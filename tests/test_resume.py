"""Exact resume through the Python API: a crash or a signal mid-epoch, then `resume()`, ends bitwise equal."""
from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from torch import nn

import trainlab
from trainlab.errors import RunDirError
from trainlab.track.rundir import RunDir
from trainlab.train.callbacks import Callback
from trainlab.train.nonfinite import scale_lr
from trainlab.train.signals import GracefulSignals, TrainingInterrupted

TIMINGS = ("time", "samples_per_s", "mfu", "peak_flops")  # measured, not computed


def recipe(tmp_path, **train) -> dict:
    """Fashion-MNIST subset, an MLP with dropout (so the RNG matters), early stopping (so its state does)."""
    return {
        "name": "tiny", "seed": 11,
        "data": {"source": "fashion_mnist", "subset": 480, "val_fraction": 0.02, "batch_size": 32,
                 "preprocess": [{"normalize": "standard"}]},
        "model": {"name": "mlp", "widths": [32], "dropout": 0.3},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"name": "one_cycle"},
        "train": {"epochs": 3, "log_every": 2, "checkpoint_every": 4, "deterministic": True, "threads": 1,
                  **train},
        "early_stopping": {"monitor": "val.loss", "patience": 1},
        "output": {"root": str(tmp_path), "plots": False},
    }


class AtStep(Callback):
    """Runs `action(trainer)` inside the loss of optimizer step `step` (1-based), once: a fault mid-step."""

    def __init__(self, step: int, action):
        self.step, self.action, self.done = step, action, False

    def on_fit_start(self, trainer):
        inner, cb = trainer.loss_fn, self

        class Wrapped(nn.Module):
            def forward(self, out, y):
                if trainer.model.training and trainer.step + 1 == cb.step and not cb.done:
                    cb.done = True
                    cb.action(trainer)
                return inner(out, y)

        trainer.loss_fn = Wrapped()


def crash(trainer):
    raise RuntimeError("simulated crash")


def weights(run_dir, which="last") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "checkpoints" / which / "model.safetensors"))


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def records(run_dir) -> list[dict]:
    out = []
    for r in RunDir(run_dir).metrics():
        out.append({k: v for k, v in r.items() if k not in TIMINGS})
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    run = trainlab.train(recipe(tmp), run_dir=tmp / "ref", progress=False)
    return run


def test_same_seed_same_metrics(reference, tmp_path):
    again = trainlab.train(recipe(tmp_path), run_dir=tmp_path / "again", progress=False)
    assert records(again.path) == records(reference.path)
    assert_bitwise_equal(weights(again.path), weights(reference.path))
    env = json.loads((again.path / "env.json").read_text())
    assert env["seed"] == 11 and env["determinism"]["use_deterministic_algorithms"] is True


@pytest.mark.parametrize("step", [7, 30])  # mid-epoch 1 (last checkpoint at 4); mid-epoch 3 (at 28)
def test_crash_then_resume_is_bitwise_equal(reference, tmp_path, step):
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainlab.train(recipe(tmp_path), run_dir=tmp_path / "r", progress=False, callbacks=[AtStep(step, crash)])
    env = json.loads((tmp_path / "r" / "env.json").read_text())
    assert env["status"] == "failed" and "simulated crash" in env["error"]
    run = trainlab.resume(tmp_path / "r", progress=False)
    resumed = json.loads((tmp_path / "r" / "env.json").read_text())["resumes"][0]
    assert resumed["checkpoint"] == "last" and resumed["step"] == (step - 1) // 4 * 4  # the step-4 multiple before
    assert_bitwise_equal(weights(run.path), weights(reference.path))
    assert_bitwise_equal(weights(run.path, "best"), weights(reference.path, "best"))
    # metrics.jsonl was cut back to the checkpoint: no record twice, the same records as uninterrupted
    assert records(run.path) == records(reference.path)
    assert run.metrics["accuracy"] == reference.metrics["accuracy"]
    assert [h["val.loss"] for h in run.history] == [h["val.loss"] for h in reference.history]


def test_sigterm_inside_a_step_checkpoints_that_step(reference, tmp_path):
    """The signal lands mid-step: the step finishes, a checkpoint is written there, then the run stops."""
    def sigterm(trainer):
        os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted) as e:
        trainlab.train(recipe(tmp_path), run_dir=tmp_path / "r", progress=False, callbacks=[AtStep(10, sigterm)])
    assert (e.value.step, e.value.checkpoint, e.value.exit_code) == (10, True, 143)
    env = json.loads((tmp_path / "r" / "env.json").read_text())
    assert env["status"] == "interrupted" and env["signal"] == "SIGTERM" and env["step"] == 10
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    run = trainlab.resume(tmp_path / "r", progress=False)
    assert json.loads((run.path / "env.json").read_text())["resumes"][0]["step"] == 10  # nothing lost
    assert_bitwise_equal(weights(run.path), weights(reference.path))


def test_sigterm_whose_checkpoint_fails_to_write_says_so_and_resumes_from_the_one_before(reference, tmp_path,
                                                                                          monkeypatch):
    """The interrupt's checkpoint is written in the background: if that write fails (disk full), the
    run must not claim it was written, and `last` stays the previous checkpoint, which resumes exactly."""
    from trainlab.train import checkpoint

    real = checkpoint.write_checkpoint

    def sigterm(trainer):
        os.kill(os.getpid(), signal.SIGTERM)
        trainer.checkpoints.wait()  # the step-8 checkpoint is written; only the interrupt's write fails

        def disk_full(folder, snap, previous=None):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(checkpoint, "write_checkpoint", disk_full)  # the interrupt's write fails

    with pytest.raises(TrainingInterrupted) as e:
        trainlab.train(recipe(tmp_path), run_dir=tmp_path / "r", progress=False, callbacks=[AtStep(10, sigterm)])
    assert (e.value.step, e.value.checkpoint, e.value.exit_code) == (10, False, 143)
    assert "could not be written" in str(e.value) and "No space left" in str(e.value)
    env = json.loads((tmp_path / "r" / "env.json").read_text())
    assert env["status"] == "interrupted" and "could not be written" in env["reason"]
    monkeypatch.setattr(checkpoint, "write_checkpoint", real)
    run = trainlab.resume(tmp_path / "r", progress=False)
    assert json.loads((run.path / "env.json").read_text())["resumes"][0]["step"] == 8  # the step-4 multiple before
    assert_bitwise_equal(weights(run.path), weights(reference.path))


def test_second_signal_stops_at_once():
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    signals = GracefulSignals()
    signals.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler right after os.kill returns
        assert signals.pending
        with pytest.raises(TrainingInterrupted) as e:
            os.kill(os.getpid(), signal.SIGINT)
            [i for i in range(1000)]
        assert e.value.checkpoint is False and e.value.exit_code == 130
    finally:
        signals.restore()
    assert signal.getsignal(signal.SIGINT) is before


def test_resume_refuses_a_finished_or_missing_run(reference, tmp_path):
    with pytest.raises(RunDirError, match="already finished"):
        trainlab.resume(reference.path)
    with pytest.raises(RunDirError, match="not a run directory"):
        trainlab.resume(tmp_path / "nope")


@pytest.mark.parametrize("schedule", [{"name": "constant"}, {"name": "cosine"}, {"name": "one_cycle"}])
def test_scale_lr_halves_every_schedule_for_good(schedule):
    from trainlab.optim import build_schedule
    from trainlab.recipe import ScheduleConfig

    def lrs(factor_at: int | None):
        p = nn.Parameter(torch.zeros(2))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
        sched = build_schedule(ScheduleConfig(**schedule), opt, 20)
        out = []
        for i in range(20):
            if i == factor_at:
                scale_lr(opt, sched, 0.5)
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    plain, halved = lrs(None), lrs(5)
    assert halved[:5] == plain[:5]
    assert all(h == pytest.approx(p / 2, rel=1e-12) for h, p in zip(halved[5:], plain[5:]))


def test_a_signal_noted_before_fit_stops_the_run_at_its_first_step(tmp_path):
    """A Ctrl-C whose KeyboardInterrupt was swallowed (it landed in a weakref callback) but that tune's
    handler noted (signals.note) is honoured by the next training: it stops after step 1 with a
    checkpoint, as a Ctrl-C during that step would."""
    from trainlab.train import signals

    signals.note(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as e:
        trainlab.train(recipe(tmp_path), run_dir=tmp_path / "r", progress=False)
    assert (e.value.step, e.value.checkpoint, e.value.exit_code) == (1, True, 130)
    assert signals.take_noted() is None  # taken once
    env = json.loads((tmp_path / "r" / "env.json").read_text())
    assert env["status"] == "interrupted" and env["signal"] == "SIGINT"
