"""precision.py: what each `train.precision` resolves to, its autocast context and loss scaler; fp16 training
with loss scaling on a CPU (an overflow is the scaler's, a non-finite loss the guard's), and its resume."""
from __future__ import annotations

import contextlib
import importlib
import json

import pytest
import torch
from torch import nn

import trainlab
from trainlab.errors import RecipeError
from trainlab.precision import autocast, grad_scaler, precision_dtype, resolve_precision
from trainlab.recipe import load_recipe
from trainlab.track.rundir import RunDir
from trainlab.train import Trainer
from trainlab.train.callbacks import Callback
from trainlab.train.checkpoint import load_checkpoint_state

CPU = torch.device("cpu")
INIT_SCALE = 2.0**16  # GradScaler's default


@pytest.fixture(autouse=True)
def no_peak_probe(monkeypatch):
    # the MFU peak of fp16 on a CPU is a slow probe (seconds): these tests do not need the number
    # (trainlab.train is also the name of a function: the module is looked up by its full name)
    monkeypatch.setattr(importlib.import_module("trainlab.train.trainer"), "peak_flops", lambda *a, **k: 1e11)


# --- the table -------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision, resolved, dtype", [
    ("fp32", "fp32", None), ("auto", "fp32", None),  # auto on a CPU without a measured step: fp32
    ("bf16", "bf16", torch.bfloat16), ("fp16", "fp16", torch.float16)])
def test_precision_resolves_to_its_autocast_and_scaler(precision, resolved, dtype):
    assert resolve_precision(precision, CPU) == resolved
    assert precision_dtype(resolved) == (dtype or torch.float32)
    ctx = autocast(CPU, precision)
    a, b = torch.ones(4, 4), torch.ones(4, 4)
    if dtype is None:
        assert isinstance(ctx, contextlib.nullcontext)  # fp32: no autocast context at all
    else:
        assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == dtype and ctx.device == "cpu"
    with ctx:
        assert (a @ b).dtype == (dtype or torch.float32)
    scaler = grad_scaler(resolved, CPU)
    if resolved == "fp16":
        assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled() and scaler.get_scale() == INIT_SCALE
    else:
        assert scaler is None


def test_fp16_with_a_closure_optimizer_is_a_recipe_error():
    recipe = load_recipe({"name": "l", "data": {"source": "synthetic:classification", "n": 64},
                          "model": {"name": "mlp", "widths": [8]}, "optim": {"name": "lbfgs", "lr": 0.5},
                          "train": {"epochs": 1, "precision": "fp16", "threads": 1}})
    with pytest.raises(RecipeError, match=r"train.precision: fp16 .*lbfgs") as e:
        Trainer(recipe, progress=False)
    assert "\n" not in str(e.value)
    recipe.train.precision = "bf16"  # the closure step itself is fine without a scaler
    assert Trainer(recipe, progress=False).scaler is None


# --- fp16 training -----------------------------------------------------------------------------------
def digits(tmp_path, **train) -> dict:
    return {"name": "fp16", "seed": 4,
            "data": {"source": "sklearn:digits", "batch_size": 64, "preprocess": [{"normalize": "standard"}]},
            "model": {"name": "mlp", "widths": [64]},
            "optim": {"name": "adamw", "lr": 3e-3},
            "train": {"epochs": 4, "precision": "fp16", "threads": 1, "log_every": 5, **train},
            "output": {"root": str(tmp_path), "plots": False}}


class Watch(Callback):
    """Keeps the trainer; records the dtype of the first layer's training outputs; refuses the lean step."""

    def __init__(self):
        self.trainer, self.dtypes, self.scale_at_start = None, set(), None

    def on_fit_start(self, trainer):
        self.trainer = trainer
        self.scale_at_start = trainer.scaler.get_scale() if trainer.scaler is not None else None
        first = next(m for m in trainer.model.modules() if isinstance(m, nn.Linear))
        first.register_forward_hook(lambda m, i, o: self.dtypes.add(o.dtype) if m.training else None)

        def lean_step():
            raise AssertionError("the lean step ran while a scaler is active")
        trainer.lean.step = lean_step


def events(run_dir) -> list[dict]:
    return [r for r in RunDir(run_dir).metrics() if r.get("split") == "event"]


def test_fp16_trains_the_mlp_on_a_cpu_with_loss_scaling(tmp_path):
    watch = Watch()
    run = trainlab.train(digits(tmp_path, grad_clip=5.0), run_dir=tmp_path / "r", progress=False, callbacks=[watch])
    t = watch.trainer
    assert watch.dtypes == {torch.float16}  # the forward ran under fp16 autocast
    assert events(run.path) == [] and t.guard.skipped == 0 and t.guard.rollbacks == 0
    # the scaler took part in every step: each update without an overflow counts one, an overflow halves it
    saved = load_checkpoint_state(run.path / "checkpoints" / "last")["scaler"]
    assert saved == t.scaler.state_dict()
    assert saved["scale"] < INIT_SCALE or saved["_growth_tracker"] == t.step > 0
    assert run.history[-1]["val.accuracy"] > 0.85  # ten classes: chance is 0.1
    assert json.loads((run.path / "env.json").read_text())["precision"] == "fp16"


def fp16_trainer(**train) -> tuple[Trainer, torch.Tensor, torch.Tensor]:
    recipe = load_recipe({"name": "b", "seed": 1, "data": {"source": "synthetic:classification", "n": 256},
                          "model": {"name": "mlp", "widths": [16]}, "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                          "train": {"epochs": 1, "precision": "fp16", "threads": 1, **train}})
    t = Trainer(recipe, progress=False)
    split = t.bundle.train
    return t, split.x[:32], split.y[:32]


def params(t: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in t.model.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("clip", [None, 1.0])
def test_an_overflowed_gradient_is_skipped_by_the_scaler_and_is_no_nonfinite_step(clip):
    t, xb, yb = fp16_trainer(grad_clip=clip)
    for _ in range(4):  # at 2**16 this data's gradients overflow fp16 at first: the scaler settles its scale
        t.train_batch(xb, yb)
    scale = t.scaler.get_scale()
    assert scale < INIT_SCALE
    weight = next(t.model.parameters())
    handle = weight.register_hook(lambda g: g * float("inf"))  # one backward overflows
    before = params(t)
    _, loss, ok = t.train_batch(xb, yb)
    handle.remove()
    assert ok and torch.isfinite(loss)
    assert same(before, params(t))  # the scaler skipped the update
    assert t.scaler.get_scale() == scale / 2  # and lowered the scale
    assert t.guard.decide(sync_point=True) is None and t.guard.consecutive == 0 and t.guard.skipped == 0
    t.train_batch(xb, yb)  # the next step is applied again
    assert not same(before, params(t))
    assert t.scaler.get_scale() == scale / 2


@pytest.mark.parametrize("clip", [None, 1.0])
def test_a_nonfinite_loss_in_fp16_is_still_a_nonfinite_step(clip):
    t, xb, yb = fp16_trainer(grad_clip=clip)
    for _ in range(4):  # past the first steps, whose gradients overflow at the initial scale
        t.train_batch(xb, yb)
    inner = t.loss_fn
    t.loss_fn = lambda out, y: inner(out, y) * float("nan")
    before = params(t)
    _, _, ok = t.train_batch(xb, yb)
    assert not ok and same(before, params(t))
    assert t.guard.decide(sync_point=True) == ("skip", "loss")
    t.loss_fn = inner
    _, _, ok = t.train_batch(xb, yb)  # the scaler's own bookkeeping went on: the next step works
    assert ok and not same(before, params(t)) and t.guard.decide(sync_point=True) is None


def test_a_checkpoint_without_scaler_state_still_loads():
    t, xb, yb = fp16_trainer()
    t.train_batch(xb, yb)
    state = t.state_dict()
    assert state["scaler"]["scale"] == INIT_SCALE / 2  # this data's first step overflows at 2**16
    old = {k: v for k, v in state.items() if k != "scaler"}  # as written before fp16 had a scaler
    fresh, _, _ = fp16_trainer()
    fresh.load_state_dict(old)
    assert fresh.step == 1 and fresh.scaler.get_scale() == INIT_SCALE  # a fresh scaler: it adapts again
    fresh.load_state_dict(state)
    assert fresh.scaler.state_dict() == state["scaler"]
    fp32, _, _ = fp16_trainer(precision="fp32")
    assert fp32.scaler is None and "scaler" not in fp32.state_dict()


# --- resume --------------------------------------------------------------------------------------
class OverflowAt(Callback):
    """Makes the gradients overflow in optimizer step `step` (1-based), so the scale drops to half."""

    def __init__(self, step: int):
        self.step = step

    def on_fit_start(self, trainer):
        if trainer.step >= self.step:
            return
        weight, cb = next(trainer.model.parameters()), self
        weight.register_hook(lambda g: g * float("inf") if trainer.step + 1 == cb.step else g)


class CrashAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step(self, trainer, logs):
        if trainer.step >= self.step:
            raise RuntimeError("simulated crash")


def test_resume_from_a_mid_run_fp16_checkpoint_continues_with_its_scale(tmp_path):
    train = {"epochs": 2, "checkpoint_every": 4, "log_every": 1, "deterministic": True}
    ref_watch = Watch()
    ref = trainlab.train(digits(tmp_path, **train), run_dir=tmp_path / "ref", progress=False,
                         callbacks=[OverflowAt(3), ref_watch])
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainlab.train(digits(tmp_path, **train), run_dir=tmp_path / "r", progress=False,
                       callbacks=[OverflowAt(3), CrashAt(10)])
    saved = load_checkpoint_state(tmp_path / "r" / "checkpoints" / "last")
    assert saved["trainer"]["step"] == 8 and saved["scaler"]["scale"] == INIT_SCALE / 2
    watch = Watch()
    run = trainlab.resume(tmp_path / "r", progress=False, callbacks=[OverflowAt(3), watch])
    assert watch.scale_at_start == INIT_SCALE / 2  # not a fresh scaler's 2**16
    assert watch.trainer.scaler.state_dict() == ref_watch.trainer.scaler.state_dict()
    from safetensors.torch import load_file

    a, b = (load_file(str(p / "checkpoints" / "last" / "model.safetensors")) for p in (run.path, ref.path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert events(run.path) == []
