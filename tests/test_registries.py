"""Registries with metadata: metrics, preprocess transforms, trackers and optimizer capabilities,
tested by enumerating the registries, and one registration of each kind seen working end to end."""
from __future__ import annotations

import json
import math
from types import MappingProxyType

import pytest
import torch

from trainlab.api import train
from trainlab.data import build_data
from trainlab.data.preprocess import PREPROCESS
from trainlab.errors import RecipeError
from trainlab.events import Callback
from trainlab.metrics import (METRICS, Classified, check_metric_names, classification_metrics, compute_metrics,
                              default_metrics, evaluate_outputs, higher_is_better, metric_names, metric_task,
                              resolve_monitor)
from trainlab.optim import OPTIMIZERS, build_optimizer, needs_closure, optimizer_capabilities
from trainlab.recipe import load_recipe
from trainlab.registry import Registry
from trainlab.track import trackers
from trainlab.track.trackers import TRACKERS

BLOBS = {"source": "synthetic:classification", "n": 240, "classes": 4, "features": 3, "spread": 3.0,
         "batch_size": 32}


def _blobs_recipe(tmp_path, **sections) -> dict:
    out = {"root": str(tmp_path / "runs"), "plots": False, "report": False, "trackers": []}
    raw = {"name": "blobs", "data": dict(BLOBS), "model": {"name": "mlp", "widths": [8]},
           "optim": {"name": "adamw", "lr": 0.01}, "train": {"epochs": 2, "threads": 1}}
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    raw["output"] = {**out, **sections.get("output", {})}
    return raw


def _records(run_dir, split: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("split") == split and "epoch" in r]


# --- Registry ----------------------------------------------------------------------------------
def test_metadata_is_frozen_and_required_metadata_is_enforced():
    reg = Registry("thing", "things", required=("kind",))
    reg.add("a", lambda: 1, "an a", kind="x", size=3)
    e = reg.get("a")
    assert isinstance(e.meta, MappingProxyType) and dict(e.meta) == {"kind": "x", "size": 3}
    with pytest.raises(TypeError):
        e.meta["kind"] = "y"  # type: ignore[index]
    with pytest.raises(ValueError, match="must declare kind"):
        reg.add("b", lambda: 2, "a b")


def test_family_members_are_typed_and_remove_forgets_everything():
    reg = Registry("thing", "things", context=("c",))

    def scaled(c, k: int, by: float = 1.0):
        return c * k * by

    reg.add_family("times<k>", r"times(?P<k>\d+)", scaled, "c times k", up=True)
    m = reg.get("times7")
    assert (m.name, m.family, dict(m.params), m.meta["up"]) == ("times7", "times<k>", {"k": 7}, True)
    assert m.factory(2) == 14 and reg.options("times7").keys() == {"by"}
    assert reg.options("times<k>").keys() == {"k", "by"}
    assert "times<k>" not in reg and "timesx" not in reg and reg.names() == ["times<k>"]
    with pytest.raises(RecipeError, match=r"^x: unknown thing 'time3'.*or any times<k>"):
        reg.get("time3", "x")
    with pytest.raises(ValueError, match="not all options"):
        reg.add_family("bad<n>", r"bad(?P<n>\d+)", scaled, "groups that are no options")
    reg.add("alias_me", lambda c: c, "one", aliases=("other",))
    reg.remove("other")  # by an alias: the entry and every alias go
    reg.remove("times<k>")
    assert "alias_me" not in reg and "other" not in reg and "times7" not in reg and reg.names() == []
    reg.add("alias_me", lambda c: c, "registered again after remove")


# --- metrics -----------------------------------------------------------------------------------
def _fixed_batch(task: str):
    g = torch.Generator().manual_seed(0)
    if task == "classification":
        y = torch.arange(60) % 10
        logits = torch.randn(60, 10, generator=g) + 2.5 * torch.nn.functional.one_hot(y, 10)
        return logits, y, torch.nn.CrossEntropyLoss(), 10
    if task == "multilabel":
        y = (torch.arange(60 * 4).view(60, 4) % 3 == 0).float()
        return torch.randn(60, 4, generator=g) + 3 * (y - 0.5), y, torch.nn.BCEWithLogitsLoss(), 4
    y = torch.randn(60, 1, generator=g)
    return y + 0.3 * torch.randn(60, 1, generator=g), y, torch.nn.MSELoss(), None


def _concrete(entry, num_classes: int = 10) -> list[str]:
    return entry.meta["evaluated"](num_classes) if entry.pattern else [entry.name]


@pytest.mark.parametrize("entry", METRICS.entries(), ids=lambda e: e.name)
def test_every_metric_computes_on_a_fixed_batch(entry):
    task = entry.meta["task"]
    assert task in ("classification", "regression", "multilabel") and isinstance(entry.meta["higher_is_better"], bool)
    assert isinstance(entry.meta["needs_probs"], bool) and entry.description
    for t in (task, *entry.meta.get("also", ())):  # every task it is computed for (f1_macro: multi-label too)
        outputs, y, loss, classes = _fixed_batch(t)
        for name in _concrete(entry):
            assert metric_task(name) == task and higher_is_better(f"val.{name}") is entry.meta["higher_is_better"]
            value = compute_metrics(outputs, y, t, loss, classes, [name])[name]
            assert isinstance(value, float) and math.isfinite(value), name
            assert name in metric_names(t, classes)  # the full evaluation reports it too
        if t != "regression" and not entry.meta["needs_probs"]:
            # a metric that reads only the predicted classes does not move when the logits are rescaled
            for name in _concrete(entry):
                cold = compute_metrics(outputs * 0.1, y, t, loss, classes, [name])[name]
                assert cold == compute_metrics(outputs, y, t, loss, classes, [name])[name]


def test_the_names_lists_come_from_the_registry():
    assert classification_metrics(10)[:2] == ["accuracy", "top5_accuracy"] and "top2_accuracy" in \
        classification_metrics(4) and not any(n.startswith("top") for n in classification_metrics(2))
    assert metric_names("regression", None) == ["mse", "rmse", "mae", "r2"] == default_metrics("regression")
    assert default_metrics("classification") == ["accuracy"]
    assert default_metrics("multilabel") == ["f1_macro", "f1_micro", "map", "subset_accuracy", "hamming"]


def _error_rate(c: Classified) -> float:
    return float((c.preds != c.target).double().mean())


@pytest.fixture
def error_rate():
    METRICS.add("test_error_rate", _error_rate, "share misclassified (registered by a test)",
                task="classification", higher_is_better=False, needs_probs=False)
    yield "test_error_rate"
    METRICS.remove("test_error_rate")


def test_a_registered_metric_validates_is_logged_and_can_be_the_monitor(tmp_path, error_rate):
    load_recipe({"train": {"metrics": [error_rate]}})
    check_metric_names([error_rate], "classification", 4)
    with pytest.raises(RecipeError, match=r"train.metrics\[0\]: 'test_error_rate' is a classification metric"):
        check_metric_names([error_rate], "regression")
    assert higher_is_better(f"val.{error_rate}") is False
    raw = _blobs_recipe(tmp_path, train={"epochs": 3, "monitor": f"val.{error_rate}"})
    run = train(raw, progress=False)  # the metric is not in train.metrics: the monitor asks for it
    vals = [r[error_rate] for r in _records(run.dir.path, "val")]
    assert len(vals) == 3 and all(0.0 <= v <= 1.0 for v in vals)
    accs = [r["accuracy"] for r in _records(run.dir.path, "val")]
    assert vals == pytest.approx([1 - a for a in accs], abs=1e-6)  # the same predictions, counted the other way


def test_a_registered_metric_picks_the_best_checkpoint(tmp_path, error_rate):
    from trainlab.track.rundir import RunDir
    from trainlab.train import Trainer

    recipe = load_recipe({"name": "b", "data": dict(BLOBS), "model": {"name": "mlp", "widths": [8]},
                          "train": {"epochs": 2, "threads": 1, "metrics": [error_rate],
                                    "monitor": f"val.{error_rate}"}, "output": {"trackers": []}})
    trainer = Trainer(recipe, run_dir=RunDir.create(str(tmp_path), "b", tmp_path / "run"), progress=False)
    trainer.fit()
    vals = [h[f"val.{error_rate}"] for h in trainer.history]
    assert trainer.monitor == f"val.{error_rate}" and trainer.best == min(vals)


def test_unknown_metrics_get_the_registry_error():
    with pytest.raises(RecipeError, match=r"^train.metrics\[0\]: unknown metric 'f1_macr'; did you mean 'f1_macro'"):
        load_recipe({"train": {"metrics": ["f1_macr"]}})
    with pytest.raises(RecipeError, match=r"needs 1 <= k < 4"):
        check_metric_names(["top4_accuracy"], "classification", 4)


def test_evaluation_numbers_are_unchanged_by_a_registered_metric(error_rate):
    outputs, y, loss, classes = _fixed_batch("classification")
    full = evaluate_outputs(outputs, y, "classification", loss, classes)
    assert full[error_rate] == pytest.approx(1 - full["accuracy"])


# --- the monitor rule ----------------------------------------------------------------------------
@pytest.mark.parametrize("train_cfg,es,task,has_val,expected", [
    ({}, None, "classification", True, "val.accuracy"),
    ({}, None, "regression", True, "val.loss"),
    ({}, None, "classification", False, "train.loss"),
    ({}, {"monitor": "val.auroc"}, "classification", True, "val.auroc"),
    ({}, {"patience": 1}, "regression", True, "val.loss"),
    ({"monitor": "val.f1_macro"}, {"monitor": "val.auroc"}, "classification", True, "val.f1_macro"),
])
def test_one_monitor_rule_for_recipes_and_run_directories(train_cfg, es, task, has_val, expected):
    raw = {"train": train_cfg, **({"early_stopping": es} if es else {})}
    recipe = load_recipe(raw)
    assert resolve_monitor(recipe, task, has_val) == expected
    assert resolve_monitor(recipe.to_dict(), task, has_val) == expected  # a run dir's recipe.yaml
    assert resolve_monitor(raw, task, has_val) == expected  # a hand-written dict, defaults left out


# --- preprocess transforms -------------------------------------------------------------------------
class _Center:
    """x - mean(x) of the training split (a test transform)."""

    def __init__(self, scale: float = 1.0):
        self.scale, self.mean = scale, None

    def fit(self, x):
        self.mean = x.mean(dim=0, keepdim=True)
        return self

    def __call__(self, x):
        return (x - self.mean) * self.scale

    def stats(self):
        return {"mean": self.mean.flatten().tolist()}

    def state_dict(self):
        return {"mean": self.mean}

    def load_state_dict(self, state):
        self.mean = state["mean"]


@pytest.fixture
def center():
    PREPROCESS.add("test_center", _Center, "subtract the training mean (registered by a test)")
    yield "test_center"
    PREPROCESS.remove("test_center")


def test_a_registered_preprocess_transform_is_checked_fitted_and_saved(center):
    recipe = load_recipe({"data": {**BLOBS, "preprocess": [{center: 2.0}]}})
    bundle = build_data(recipe.data, recipe.seed)
    assert bundle.train.x.mean(dim=0).abs().max() < 1e-5  # fitted on the training split only
    assert set(bundle.preprocess) == {"0.mean"}
    again = build_data(recipe.data, recipe.seed, {"0.mean": bundle.preprocess["0.mean"] + 1.0})
    assert torch.allclose(again.train.x, bundle.train.x - 2.0, atol=1e-5)  # a saved state is applied, not refitted
    with pytest.raises(RecipeError, match=r"^data.preprocess.0.scal: unknown key"):
        load_recipe({"data": {**BLOBS, "preprocess": [{center: {"scal": 2.0}}]}})


def test_preprocess_names_get_the_registry_error_and_normalize_keeps_its_state_format():
    with pytest.raises(RecipeError, match=r"^data.preprocess.1: unknown preprocess transform 'normalise'; "
                                          r"did you mean 'normalize'"):
        load_recipe({"data": {"preprocess": ["normalize", "normalise"]}})
    with pytest.raises(RecipeError, match=r"^data.preprocess.0.method: .*'standard' or 'minmax'"):
        load_recipe({"data": {"preprocess": [{"normalize": "zscore"}]}})
    recipe = load_recipe({"data": {**BLOBS, "preprocess": [{"normalize": "standard"}]}})
    bundle = build_data(recipe.data, recipe.seed)
    assert set(bundle.preprocess) == {"0.shift", "0.scale"}
    state = {"0.shift": torch.zeros(1, 3), "0.scale": torch.full((1, 3), 2.0)}
    raw = build_data(load_recipe({"data": BLOBS}).data, recipe.seed)
    loaded = build_data(recipe.data, recipe.seed, state)  # a run dir's data/preprocess.safetensors
    assert torch.allclose(loaded.train.x, raw.train.x / 2.0)


# --- trackers ------------------------------------------------------------------------------------
class _Recorder(Callback):
    def __init__(self, recipe):
        self.recipe, self.events = recipe, []

    def on_fit_start(self, trainer):
        self.events.append(("start", trainer.run_dir is not None))

    def on_step(self, trainer, logs):
        self.events.append(("step", logs["loss"]))

    def on_epoch_end(self, trainer, logs):
        self.events.append(("epoch", logs["epoch"]))

    def on_fit_end(self, trainer):
        self.events.append(("end", trainer.epoch))


@pytest.fixture
def recorder():
    made: list[_Recorder] = []

    def factory(recipe):
        made.append(_Recorder(recipe))
        return made[-1]

    TRACKERS.add("test_recorder", factory, "records the events it sees (registered by a test)")
    yield made
    TRACKERS.remove("test_recorder")


def test_a_registered_tracker_sees_every_event_of_a_run(tmp_path, recorder):
    raw = _blobs_recipe(tmp_path, train={"log_every": 2},
                        output={"trackers": ["tensorboard", "test_recorder"]})
    run = train(raw, progress=False)
    (rec,) = recorder
    kinds = [e[0] for e in rec.events]
    assert kinds[0] == "start" and rec.events[0][1] is True and kinds[-1] == "end"
    assert [e[1] for e in rec.events if e[0] == "epoch"] == [1, 2] and "step" in kinds
    assert rec.recipe.output.trackers == ["tensorboard", "test_recorder"]
    assert any((run.dir.path / "tb").iterdir())  # the other tracker of the list ran too
    with pytest.raises(RecipeError, match=r"^output.trackers.0: unknown tracker 'test_recordr'; did you mean"):
        load_recipe({"output": {"trackers": ["test_recordr"]}})


def test_output_tensorboard_false_still_turns_tensorboard_off_with_one_note(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(trackers, "_noted", False)
    raw = _blobs_recipe(tmp_path, train={"epochs": 1})
    del raw["output"]["trackers"]
    raw["output"]["tensorboard"] = False
    recipe = load_recipe(raw)
    assert recipe.output.trackers == [] and recipe.output.tensorboard is False
    assert "tensorboard" not in recipe.to_dict()["output"]
    run = train(raw, progress=False)
    train(raw, progress=False, run_dir=tmp_path / "second")
    assert not (run.dir.path / "tb").exists() and not (tmp_path / "second" / "tb").exists()
    assert capsys.readouterr().err.count("output.tensorboard is deprecated") == 1
    # what every older resolved recipe.yaml says changes nothing and says nothing
    old = load_recipe({"output": {"tensorboard": True}})
    assert old.output.trackers == ["tensorboard"] and old.output.tensorboard is True
    with pytest.raises(RecipeError, match=r"^output.tensorboard: expected true or false, got 'no'"):
        load_recipe({"output": {"tensorboard": "no"}})


# --- optimizer capabilities ----------------------------------------------------------------------
def _old_checks(opt) -> dict:
    """What the code answered before capabilities were declared: isinstance and the defaults."""
    import schedulefree

    groups = opt.param_groups
    return {
        "closure": isinstance(opt, torch.optim.LBFGS),
        "schedule_free": isinstance(opt, (schedulefree.AdamWScheduleFree, schedulefree.SGDScheduleFree,
                                          schedulefree.RAdamScheduleFree, schedulefree.ScheduleFreeWrapper)),
        "fused_kernel": {torch.optim.SGD: "sgd", torch.optim.Adam: "adam", torch.optim.AdamW: "adamw"}.get(type(opt)),
        "cycles_momentum": ((("betas" in opt.defaults and all("betas" in g for g in groups)) or (
            "momentum" in opt.defaults and all(g.get("momentum", 0) > 0 for g in groups)))
            and not any("train_mode" in g for g in groups)),
    }


def _cycles(caps, opt) -> bool:
    groups = opt.param_groups
    return ((caps.momentum == "betas" and all("betas" in g for g in groups)) or (
        caps.momentum == "momentum" and all(g.get("momentum", 0) > 0 for g in groups))) and not caps.schedule_free


def _model():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                               torch.nn.Linear(8, 3))


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_declared_capabilities_answer_as_the_old_type_checks(name):
    from trainlab.recipe import OptimConfig

    variants = [{}] + ([{"momentum": 0.0}] if "momentum" in OPTIMIZERS.option_names(name) else [])
    for opts in variants:  # without momentum, one-cycle has nothing to cycle
        opt = build_optimizer(OptimConfig(name=name, lr=0.01, **opts), _model())
        caps = optimizer_capabilities(opt)
        old = _old_checks(opt)
        assert (caps.closure, caps.schedule_free, caps.fused_kernel, _cycles(caps, opt)) == (
            old["closure"], old["schedule_free"], old["fused_kernel"], old["cycles_momentum"]), opts
        assert needs_closure(opt) is old["closure"]
        del opt.trainlab_optimizer  # built elsewhere: the fallback reads the class and gives the same answers
        fallback = optimizer_capabilities(opt)
        assert (fallback.closure, fallback.schedule_free, fallback.fused_kernel, _cycles(fallback, opt)) == (
            caps.closure, caps.schedule_free, caps.fused_kernel, _cycles(caps, opt))


def test_one_cycle_cycles_momentum_where_the_capabilities_say():
    from trainlab.optim.schedules import one_cycle
    from trainlab.recipe import OptimConfig

    for name, cycles in (("sgd", True), ("adamw", True), ("adagrad", False), ("schedule_free_adamw", False)):
        opt = build_optimizer(OptimConfig(name=name, lr=0.01), _model())
        assert one_cycle(opt, total_steps=10).cycle_momentum is cycles, name
