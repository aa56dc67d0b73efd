"""The LR range test: the sweep, the suggestions, divergence, and that the trainer is restored."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from trainlab.errors import RunDirError
from trainlab.lr_find import lr_find, lr_range_test, suggestions
from trainlab.recipe import load_recipe
from trainlab.train import Trainer


def _recipe(extra=(), optim=None):
    raw = {"name": "lrf", "data": {"source": "synthetic:addition", "n": 2000, "batch_size": 32},
           "model": {"name": "mlp", "widths": [16]}, "loss": {"name": "mse"},
           "optim": optim or {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "schedule": {"name": "one_cycle"},
           "train": {"threads": 1, "epochs": 1}, "output": {"plots": False}}
    return load_recipe(raw, list(extra))


def test_suggestions_on_a_known_curve():
    lrs = list(np.logspace(-6, 1, 141))
    # falls fastest at lr 1e-3 (a logistic in log10 lr), bottoms out at 1e-1, then rises
    loss = [2 - 1 / (1 + math.exp(-4 * (math.log10(lr) + 3))) + max(0.0, math.log10(lr) + 1) ** 2 for lr in lrs]
    steepest, min_div10 = suggestions(lrs, loss)
    assert steepest == pytest.approx(1e-3, rel=0.13)
    assert min_div10 == pytest.approx(1e-2, rel=0.13)


def test_sweep_diverges_suggests_and_restores_the_trainer():
    trainer = Trainer(_recipe(), progress=False)
    model0 = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    lr0 = [g["lr"] for g in trainer.optimizer.param_groups]
    sched0, rng0 = trainer.schedule.state_dict(), torch.get_rng_state()
    result = lr_range_test(trainer, start_lr=1e-5, end_lr=100.0, steps=120)
    assert "diverged" in result.stopped or "not finite" in result.stopped
    assert len(result.lrs) < 120 and result.lrs[0] == pytest.approx(1e-5)
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:]))
    assert result.steepest in result.lrs
    assert result.min_div10 * 10 == pytest.approx(result.lrs[int(np.argmin(result.smoothed))])
    if "diverged" in result.stopped:
        assert result.smoothed[-1] > 4 * min(result.smoothed)
    # restored: weights, optimizer (no momentum left behind, LRs back), schedule, RNG, counters
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, model0[k]), k
    assert [g["lr"] for g in trainer.optimizer.param_groups] == lr0
    assert all(len(s) == 0 for s in trainer.optimizer.state.values())
    assert trainer.schedule.state_dict()["last_epoch"] == sched0["last_epoch"]
    assert torch.equal(torch.get_rng_state(), rng0)
    assert trainer.step == 0 and trainer.loader.state_dict()["position"] == 0


def test_restored_trainer_fits_exactly_as_a_fresh_one():
    fresh = Trainer(_recipe(), progress=False)
    fresh.fit()
    swept = Trainer(_recipe(), progress=False)
    lr_range_test(swept, steps=30)
    swept.fit()
    for a, b in zip(fresh.model.parameters(), swept.model.parameters()):
        assert torch.equal(a, b)


def test_lr_find_keeps_lr_multipliers_and_schedule_free_modes():
    trainer = Trainer(_recipe(optim={"name": "adamw", "lr_mult": {"3": 10}}), progress=False)
    seen = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, a, k: seen.append({g["lr_mult"]: g["lr"] for g in opt.param_groups}))
    lr_range_test(trainer, steps=20)
    assert all(s[10.0] == pytest.approx(10 * s[1.0]) for s in seen)
    sf = Trainer(_recipe(optim={"name": "schedule_free_adamw"}), progress=False)
    lr_range_test(sf, steps=20)  # the optimizer must be in train mode to step; restored afterwards
    assert sf.optimizer.param_groups[0]["train_mode"] is False


def test_lr_find_writes_json_and_plot_and_never_overwrites(tmp_path):
    out = tmp_path / "lrf"
    result, path = lr_find(_recipe(optim={"name": "adamw"}).to_dict(), None, out, steps=60)
    data = json.loads((out / "lr_find.json").read_text())
    assert path == out and (out / "recipe.yaml").is_file()
    assert (out / "plots" / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["suggestion"] == {"steepest": result.steepest, "min_div10": result.min_div10}
    assert len(data["lrs"]) == len(data["losses"]) == len(data["smoothed"]) > 10
    assert data["settings"]["optimizer"] == "adamw"
    with pytest.raises(RunDirError, match="lr_find.json exists"):
        lr_find(_recipe().to_dict(), None, out, steps=20)
