"""data.target_scaling: regression trains on standardized targets; every prediction and metric is
in the original units; the scaler lives in the run, and runs from before it still load."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import trainlab
from trainlab.data import TargetScaler, build_data, target_scaling
from trainlab.metrics import majority_baseline, mean_baseline
from trainlab.recipe import load_recipe


def _csv(tmp_path, n: int = 200):
    """y = 300 + 100·(x1 - 2·x2) + noise: a target far from unit scale."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    y = 300 + 100 * (x[:, 0] - 2 * x[:, 1]) + 5 * torch.randn(n, generator=g)
    p = tmp_path / "t.csv"
    p.write_text("a,b,y\n" + "".join(f"{a:.6f},{b:.6f},{t:.6f}\n" for (a, b), t in zip(x.tolist(), y.tolist())))
    return p


def _recipe(tmp_path, **data) -> dict:
    return {"name": "reg", "seed": 0,
            "data": {"source": "csv", "path": str(_csv(tmp_path)), "target": "y", "batch_size": 32,
                     "preprocess": [{"normalize": "standard"}], **data},
            "model": {"name": "mlp", "widths": [16]}, "optim": {"name": "adamw", "lr": 0.01},
            "train": {"epochs": 15, "threads": 1}, "output": {"root": str(tmp_path), "plots": False, "report": False}}


def test_auto_is_standard_for_regression_and_none_for_known_answer_sources(tmp_path):
    r = load_recipe(_recipe(tmp_path))
    assert r.data.target_scaling == "auto" and target_scaling(r.data) == "standard"
    assert target_scaling(load_recipe({"data": {"source": "synthetic:linear"}}).data) == "none"
    b = build_data(r.data, r.seed)
    raw = build_data(load_recipe(_recipe(tmp_path, target_scaling="none")).data, 0)
    s = b.target_scaler
    # fitted on the training split only, applied to every split
    assert s.shift.item() == pytest.approx(float(raw.train.y.mean()), rel=1e-6)
    assert s.scale.item() == pytest.approx(float(raw.train.y.std()), rel=1e-6)
    for split in ("train", "val", "test"):
        torch.testing.assert_close(s.unscale(b.split(split).y), raw.split(split).y, rtol=1e-5, atol=1e-4)
    assert abs(float(b.train.y.mean())) < 1e-5 and float(b.train.y.std()) == pytest.approx(1.0, rel=1e-5)
    assert b.info.stats["target"]["shift"] == s.shift.flatten().tolist()
    assert raw.target_scaler is None and "target" not in raw.info.stats
    # classification: ignored
    c = build_data(load_recipe({"data": {"source": "sklearn:iris", "target_scaling": "standard"}}).data, 0)
    assert c.target_scaler is None and c.train.y.dtype == torch.long


def test_bad_value_names_the_key():
    from trainlab.errors import RecipeError

    with pytest.raises(RecipeError, match="data.target_scaling"):
        load_recipe({"data": {"source": "sklearn:diabetes", "target_scaling": "minmax"}})


def test_run_reports_original_units_and_load_run_undoes_the_scaling(tmp_path):
    run = trainlab.train(_recipe(tmp_path), run_dir=tmp_path / "run", progress=False)
    saved = load_file(str(run.path / "data" / "preprocess.safetensors"))
    assert {"target.shift", "target.scale"} <= set(saved)
    outs = load_file(str(run.path / "eval" / "test_outputs.safetensors"))
    o, t = outs["outputs"], outs["targets"]
    assert float(t.mean()) > 100  # the targets as the CSV has them
    # every metric of eval/test.json is that of the saved (original-unit) outputs
    m = json.loads((run.path / "eval" / "test.json").read_text())
    assert m["mse"] == pytest.approx(float(((o - t) ** 2).mean()), rel=1e-5)
    assert m["r2"] == pytest.approx(float(1 - ((o - t) ** 2).sum() / ((t - t.mean()) ** 2).sum()), rel=1e-5)
    assert m["r2"] > 0.9
    assert m["loss"] == pytest.approx(m["mse"] / float(saved["target.scale"]) ** 2, rel=1e-4)  # the scaled objective
    # validation metrics in metrics.jsonl: original units too (the loss is the scaled objective)
    last = run.history[-1]
    assert last["val.mse"] > 10 * last["val.loss"]
    # load_run(...).predict gives the same numbers as the evaluation, in original units
    loaded = trainlab.load_run(run.path)
    bundle = build_data(loaded.recipe.data, 0, load_file(str(run.path / "data" / "preprocess.safetensors")))
    torch.testing.assert_close(loaded.predict(bundle.test.x, prepared=True), o)
    # evaluate() rebuilds the same data and the same numbers
    again = trainlab.evaluate(run.path)
    assert again["mse"] == pytest.approx(m["mse"], rel=1e-6) and again["r2"] == pytest.approx(m["r2"], rel=1e-6)


def test_a_run_from_before_target_scaling_still_loads_and_evaluates_unscaled(tmp_path):
    run = trainlab.train(_recipe(tmp_path, target_scaling="none"), run_dir=tmp_path / "old", progress=False)
    # what an older trainlab wrote: no target_scaling key in the recipe, no target scaler saved
    rp = run.path / "recipe.yaml"
    rp.write_text("\n".join(line for line in rp.read_text().splitlines() if "target_scaling" not in line) + "\n")
    assert "target.shift" not in load_file(str(run.path / "data" / "preprocess.safetensors"))
    loaded = trainlab.load_run(run.path)
    assert loaded.recipe.data.target_scaling == "auto" and loaded.target_scaler is None
    before = json.loads((run.path / "eval" / "test.json").read_text())
    again = trainlab.evaluate(run.path)
    assert again["mse"] == pytest.approx(before["mse"], rel=1e-6)


def test_scaler_round_trips_through_its_saved_state_and_info_json():
    y = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    s = TargetScaler.fit(y)
    torch.testing.assert_close(s.unscale(s.apply(y)), y)
    for again in (TargetScaler.from_state(s.state_dict()), TargetScaler.from_stats(json.loads(json.dumps(s.stats())))):
        assert torch.equal(again.shift, s.shift) and torch.equal(again.scale, s.scale)
    assert TargetScaler.from_state({}) is None and TargetScaler.from_stats(None) is None


def test_baselines_match_scikit_learn_dummy_predictors():
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, r2_score

    g = torch.Generator().manual_seed(1)
    y_train = torch.randint(0, 3, (200,), generator=g)
    y_test = torch.randint(0, 3, (60,), generator=g)
    dummy = DummyClassifier(strategy="most_frequent").fit(y_train.view(-1, 1).numpy(), y_train.numpy())
    pred = dummy.predict(y_test.view(-1, 1).numpy())
    b = majority_baseline(y_test, 3, torch.bincount(y_train, minlength=3).tolist(), ["a", "b", "c"])
    assert b["class"] == "abc"[int(dummy.classes_[dummy.class_prior_.argmax()])]
    assert b["accuracy"] == pytest.approx(accuracy_score(y_test.numpy(), pred))
    assert b["f1_macro"] == pytest.approx(f1_score(y_test.numpy(), pred, average="macro", zero_division=0))

    t_train, t_test = 100 + 20 * torch.randn(300, generator=g), 110 + 20 * torch.randn(80, generator=g)
    reg = DummyRegressor().fit(t_train.view(-1, 1).numpy(), t_train.numpy())
    p = reg.predict(t_test.view(-1, 1).numpy())
    b = mean_baseline(t_test.view(-1, 1), t_train.mean().view(1))
    assert b["mean"] == pytest.approx(float(t_train.mean()))
    assert b["mse"] == pytest.approx(mean_squared_error(t_test.numpy(), p), rel=1e-5)
    assert b["mae"] == pytest.approx(mean_absolute_error(t_test.numpy(), p), rel=1e-5)
    assert b["r2"] == pytest.approx(r2_score(t_test.numpy(), p), rel=1e-4, abs=1e-5)
    assert b["r2"] < 0.0  # the training mean is off on a test split whose mean differs
