"""The optimizer step inside the trainer: accumulation equals the larger batch, L-BFGS closure,
schedule-free evaluation on averaged weights, clipping, early stopping with min_delta and restore-best."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from trainlab.api import train
from trainlab.data import Split, build_data
from trainlab.optim import set_train_mode
from trainlab.recipe import load_recipe
from trainlab.track.rundir import RunDir
from trainlab.train import Trainer

FASHION = "recipes/fashion_mnist_mlp.yaml"


@pytest.fixture(scope="module")
def fashion_bundle():
    recipe = load_recipe(FASHION, ["data.subset=256"])
    return build_data(recipe.data, recipe.seed)


def _weights_after_one_epoch(bundle, subset: int, batch: int, accumulate: int, l1: float) -> list[torch.Tensor]:
    train_split = Split(bundle.train.x[:subset], bundle.train.y[:subset])
    bundle = dataclasses.replace(bundle, train=train_split)
    recipe = load_recipe(FASHION, [f"data.batch_size={batch}",
                                   f"train.accumulate={accumulate}", "train.epochs=1", "train.threads=1",
                                   "optim.name=sgd", "optim.lr=0.1", "optim.momentum=0.9", f"optim.l1={l1}",
                                   "schedule.name=constant", "model.widths=[64]"])
    trainer = Trainer(recipe, bundle=bundle, progress=False)
    trainer.fit()
    return [p.detach().clone() for p in trainer.model.parameters()], trainer.step


@pytest.mark.parametrize("subset,l1", [(128, 0.0), (256, 1e-4)])
def test_accumulating_4_batches_of_32_equals_one_batch_of_128(fashion_bundle, subset, l1):
    big, big_steps = _weights_after_one_epoch(fashion_bundle, subset, 128, 1, l1)
    small, small_steps = _weights_after_one_epoch(fashion_bundle, subset, 32, 4, l1)
    assert big_steps == small_steps == subset // 128
    for a, b in zip(big, small):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    init = Trainer(load_recipe(FASHION, ["model.widths=[64]"]), bundle=fashion_bundle, progress=False)
    assert not torch.allclose(next(init.model.parameters()), big[0])  # the step did move the weights


def test_accumulation_weighs_an_uneven_last_group_by_its_samples(fashion_bundle):
    # 100 samples: batches of 32, 32, 32, 4 in one group == one batch of 100
    big, _ = _weights_after_one_epoch(fashion_bundle, 100, 100, 1, 0.0)
    small, _ = _weights_after_one_epoch(fashion_bundle, 100, 32, 4, 0.0)
    for a, b in zip(big, small):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def _addition(extra: list[str]):
    raw = {"name": "t", "data": {"source": "synthetic:addition", "n": 400, "batch_size": 32},
           "model": {"name": "linear"}, "loss": {"name": "mse"}, "train": {"threads": 1}}
    return load_recipe(raw, extra)


def test_lbfgs_closure_evaluates_the_batch_several_times_per_step():
    trainer = Trainer(_addition(["optim.name=lbfgs", "optim.lr=1", "optim.max_iter=4", "train.epochs=1"]),
                      progress=False)
    calls = []
    forward = trainer.model.forward
    trainer.model.forward = lambda x: calls.append(1) or forward(x)
    trainer.fit()
    assert trainer.step == trainer.steps_per_epoch
    assert len(calls) > trainer.step  # more than one evaluation per optimizer step
    assert trainer.history[-1]["val.loss"] < 1e-6


def test_schedule_free_validates_and_saves_the_averaged_weights(tmp_path):
    trainer = Trainer(_addition(["optim.name=schedule_free_adamw", "optim.lr=0.05", "train.epochs=2"]),
                      progress=False)
    trainer.run_dir = RunDir.create(tmp_path, "sf", tmp_path / "run")
    trainer.fit()
    averaged = [p.detach().clone() for p in trainer.model.parameters()]
    assert trainer.evaluate_split("val")["loss"] == pytest.approx(trainer.history[-1]["val.loss"])
    trainer.load_weights("last")
    for a, b in zip(averaged, trainer.model.parameters()):
        assert torch.equal(a, b)
    set_train_mode(trainer.optimizer, True)  # the training point y differs from the average x
    assert not all(torch.equal(a, b) for a, b in zip(averaged, trainer.model.parameters()))
    set_train_mode(trainer.optimizer, False)
    for a, b in zip(averaged, trainer.model.parameters()):
        torch.testing.assert_close(a, b)


def test_grad_clip_value_bounds_each_update():
    trainer = Trainer(_addition(["optim.name=sgd", "optim.lr=1", "optim.momentum=0", "train.grad_clip_value=0.001",
                                 "data.n=64", "data.batch_size=64", "train.epochs=1"]), progress=False)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    assert trainer.step == 1
    for a, b in zip(before, trainer.model.parameters()):
        delta = (b.detach() - a).abs()
        assert delta.max() <= 0.001 + 1e-7 and delta.max() > 0.0009


def test_early_stopping_min_delta_stops_and_monitor_picks_best():
    trainer = Trainer(_addition(["optim.name=sgd", "optim.lr=0.01", "train.epochs=10", "early_stopping.patience=0",
                                 "early_stopping.min_delta=10", "early_stopping.monitor=val.mse"]), progress=False)
    trainer.fit()
    assert trainer.epoch == 2 and trainer.should_stop
    assert "val.mse did not improve" in trainer.stop_reason
    assert trainer.monitor == "val.mse"  # the best checkpoint follows what early stopping watches


@pytest.mark.parametrize("restore_best,which", [(True, "best"), (False, "last")])
def test_restore_best_decides_which_weights_are_evaluated(tmp_path, restore_best, which):
    recipe = _addition(["optim.name=sgd", "optim.lr=0.05", "train.epochs=3", "early_stopping.patience=5",
                        f"early_stopping.restore_best={str(restore_best).lower()}", "output.plots=false"])
    run = train(recipe, run_dir=tmp_path / "run", progress=False)
    assert run.metrics["checkpoint"] == which
