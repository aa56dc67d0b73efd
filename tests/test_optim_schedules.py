"""LR schedules: the LR each optimizer step uses, from a table of expected values; warm-up
before any schedule; reduce_on_plateau fed per epoch; the LR logged is the LR used."""
from __future__ import annotations

import json
import math

import pytest
from torch import nn

from trainlab.errors import RecipeError
from trainlab.optim import SCHEDULES, build_optimizer, build_schedule
from trainlab.recipe import load_recipe
from trainlab.track.rundir import RunDir
from trainlab.train import Trainer

TOTAL, PER_EPOCH = 20, 5  # optimizer steps in the run, steps per epoch
C = 0.5 * (1 + math.cos(math.pi * 5 / 20))  # cosine factor a quarter of the way

# name -> (schedule options, {step: expected LR factor}); the base LR is 1.0
TABLE = {
    "constant": ({}, {0: 1.0, 19: 1.0}),
    "step": ({"step_size": 2, "gamma": 0.5}, {0: 1.0, 9: 1.0, 10: 0.5, 19: 0.5}),
    "multistep": ({"milestones": [1, 3], "gamma": 0.1}, {4: 1.0, 5: 0.1, 14: 0.1, 15: 0.01}),
    "exponential": ({"gamma": 0.5}, {0: 1.0, 5: 0.5, 10: 0.25}),
    "cosine": ({"min_ratio": 0.0}, {0: 1.0, 5: C, 10: 0.5}),
    "warmup_cosine": ({"min_ratio": 0.0}, {0: 0.5, 1: 1.0, 2: 0.5 * (1 + math.cos(math.pi / 19))}),
    "linear": ({"end_ratio": 0.0}, {0: 1.0, 10: 0.5, 19: 0.05}),
    "one_cycle": ({"pct_start": 0.25, "div_factor": 10.0}, {0: 0.1, 4: 1.0, 19: 1e-5}),
    "reduce_on_plateau": ({}, {0: 1.0, 19: 1.0}),  # moves only on epoch metrics (see below)
}


def _lr_trace(name: str, options: dict, warmup=None, steps: int = TOTAL) -> list[float]:
    model = nn.Linear(2, 1)
    raw = {"optim": {"name": "sgd", "lr": 1.0, "momentum": 0.0}, "schedule": {"name": name, **options}}
    if warmup is not None:
        raw["schedule"]["warmup"] = warmup
    recipe = load_recipe(raw)
    opt = build_optimizer(recipe.optim, model)
    sched = build_schedule(recipe.schedule, opt, TOTAL, PER_EPOCH)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_gives_the_expected_lr(name):
    options, expected = TABLE[name]  # a newly registered schedule needs a row here
    lrs = _lr_trace(name, options)
    for step, factor in expected.items():
        assert lrs[step] == pytest.approx(factor, rel=1e-6, abs=1e-9), (step, lrs)


@pytest.mark.parametrize("name", ["constant", "cosine", "step", "one_cycle"])
def test_warmup_ramps_linearly_then_runs_the_schedule_over_the_rest(name):
    options, _ = TABLE[name]
    lrs = _lr_trace(name, options, warmup=4)
    plain = _lr_trace_after_warmup(name, options, 4)
    assert lrs[:4] == pytest.approx([plain[0] * k / 5 for k in range(1, 5)])
    assert lrs[4:] == pytest.approx(plain)


def _lr_trace_after_warmup(name, options, warm):
    """The bare schedule built for the steps that remain after the warm-up."""
    model = nn.Linear(2, 1)
    recipe = load_recipe({"optim": {"name": "sgd", "lr": 1.0, "momentum": 0.0}, "schedule": {"name": name, **options}})
    opt = build_optimizer(recipe.optim, model)
    sched = build_schedule(recipe.schedule, opt, TOTAL - warm, PER_EPOCH)
    out = []
    for _ in range(TOTAL - warm):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_as_a_share_of_the_run_and_bad_values():
    lrs = _lr_trace("constant", {}, warmup=0.2)  # 4 of 20 steps
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    with pytest.raises(RecipeError, match="schedule.warmup"):
        _lr_trace("constant", {}, warmup=2.5)
    with pytest.raises(RecipeError, match="schedule.warmup"):
        _lr_trace("constant", {}, warmup=20)


def test_schedules_keep_lr_multipliers():
    model = nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 1))
    recipe = load_recipe({"optim": {"name": "sgd", "lr": 1.0, "lr_mult": {"1": 10.0}},
                          "schedule": {"name": "cosine", "warmup": 2}})
    opt = build_optimizer(recipe.optim, model)
    sched = build_schedule(recipe.schedule, opt, TOTAL, PER_EPOCH)
    for _ in range(7):
        opt.step()
        sched.step()
    lrs = {g["lr_mult"]: g["lr"] for g in opt.param_groups}
    assert lrs[10.0] == pytest.approx(10 * lrs[1.0]) and 0 < lrs[1.0] < 1


def _addition(extra):
    raw = {"name": "sched", "data": {"source": "synthetic:addition", "n": 200, "batch_size": 32},
           "model": {"name": "linear"}, "loss": {"name": "mse"}, "train": {"threads": 1, "log_every": 1}}
    return load_recipe(raw, extra)


def test_reduce_on_plateau_steps_with_the_validation_metric_each_epoch():
    # watched in "max" mode, a falling val.loss never improves: with patience 0 the LR drops
    # tenfold after every epoch but the first
    trainer = Trainer(_addition(["optim.name=sgd", "optim.lr=0.01", "train.epochs=4",
                                 "schedule.name=reduce_on_plateau", "schedule.patience=0", "schedule.mode=max",
                                 "schedule.factor=0.1"]), progress=False)
    trainer.fit()
    losses = [h["val.loss"] for h in trainer.history]
    assert losses == sorted(losses, reverse=True)
    assert [h["lr"] for h in trainer.history] == pytest.approx([0.01, 0.01, 0.001, 0.0001])
    bad = _addition(["optim.name=sgd", "schedule.name=reduce_on_plateau", "schedule.monitor=val.nope",
                     "train.epochs=1"])
    with pytest.raises(RecipeError, match="schedule.monitor: 'val.nope' is not a metric trainlab logs"):
        Trainer(bad, progress=False)  # found before any data is read, not after the first epoch


def test_logged_lr_is_the_lr_each_step_used(tmp_path):
    trainer = Trainer(_addition(["optim.name=sgd", "optim.lr=0.1", "train.epochs=2", "schedule.name=linear",
                                 "schedule.warmup=3"]), progress=False)
    used = []  # what the optimizer really sees at each step
    trainer.optimizer.register_step_pre_hook(lambda opt, args, kwargs: used.append(opt.param_groups[0]["lr"]))
    trainer.run_dir = RunDir.create(tmp_path, "x", tmp_path / "run")
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    per_step = {r["step"]: r["lr"] for r in records if r["split"] == "train" and "time" not in r}
    assert len(per_step) == trainer.step == len(used) == 2 * trainer.steps_per_epoch
    for step_no, lr in per_step.items():
        assert lr == pytest.approx(used[step_no - 1])
    assert used[:3] == pytest.approx([0.025, 0.05, 0.075])
    epochs = [r for r in records if r["split"] == "train" and "time" in r]
    assert [r["lr"] for r in epochs] == pytest.approx([used[trainer.steps_per_epoch - 1], used[-1]])


def test_schedule_state_round_trip_resumes_the_same_lrs():
    model = nn.Linear(2, 1)
    recipe = load_recipe({"optim": {"name": "sgd", "lr": 1.0}, "schedule": {"name": "cosine", "warmup": 5}})
    opt = build_optimizer(recipe.optim, model)
    sched = build_schedule(recipe.schedule, opt, TOTAL, PER_EPOCH)
    for _ in range(3):
        opt.step(), sched.step()
    state, opt_state = sched.state_dict(), opt.state_dict()
    expected = []
    for _ in range(6):
        opt.step(), sched.step()
        expected.append(opt.param_groups[0]["lr"])
    opt2 = build_optimizer(recipe.optim, nn.Linear(2, 1))
    sched2 = build_schedule(recipe.schedule, opt2, TOTAL, PER_EPOCH)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(state)
    got = []
    for _ in range(6):
        opt2.step(), sched2.step()
        got.append(opt2.param_groups[0]["lr"])
    assert got == pytest.approx(expected)
