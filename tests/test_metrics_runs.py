"""Whole runs through the Python API on small data: a binary classifier on scikit-learn's breast
cancer data (the `sklearn:breast_cancer` source) and a regression, checked against scikit-learn."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, mean_squared_error, r2_score, roc_auc_score

from trainlab import api

SOURCE = "sklearn:breast_cancer"  # 569 tumours, 30 features, malignant (0) vs benign (1); no test split


def _recipe(**over) -> dict:
    r = {"name": "bc", "seed": 0,
         "data": {"source": SOURCE, "preprocess": [{"normalize": "standard"}], "batch_size": 32},
         "model": {"name": "mlp", "widths": [16]}, "optim": {"name": "adamw", "lr": 3e-3},
         "train": {"epochs": 6, "metrics": ["accuracy", "auroc", "average_precision"]},
         "output": {"report": False}}
    r.update(over)
    return r


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    return api.train(_recipe(), run_dir=tmp_path_factory.mktemp("bc") / "run", progress=False)


def test_binary_roc_auc_matches_sklearn(binary_run):
    from trainlab.recipe import load_recipe
    from trainlab.train import Trainer
    from trainlab.train.checkpoint import load_model_weights

    d = binary_run.path
    m = json.loads((d / "eval/test.json").read_text())
    # predictions recomputed here from the best checkpoint, independently of the evaluation code
    trainer = Trainer(load_recipe(d / "recipe.yaml"), progress=False)
    load_model_weights(trainer.model, d / "checkpoints/best/model.safetensors")
    trainer.model.eval()
    with torch.no_grad():
        logits = trainer.model(trainer.bundle.test.x)
    y = trainer.bundle.test.y.numpy()
    p1 = torch.softmax(logits.double(), 1)[:, 1].numpy()
    assert m["samples"] == len(y) == 113  # test_fraction 0.2 of 569, stratified
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p1), abs=1e-6)
    assert m["average_precision"] == pytest.approx(average_precision_score(y, p1), abs=1e-6)
    assert 0.9 < m["auroc"] <= 1.0
    assert [r["class"] for r in m["per_class"]] == ["malignant", "benign"]
    assert len(m["roc"]) == 1 and m["roc"][0]["class"] == "benign"  # binary: the positive class
    assert np.array(m["confusion_matrix"]).sum() == 113
    assert (d / "plots/test_roc.png").is_file() and not (d / "plots/test_wrong.png").exists()  # not images
    # validation logged the recipe's train.metrics each epoch
    val = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    assert len(val) == 6 and all({"auroc", "average_precision", "accuracy"} <= set(r) for r in val)
    assert binary_run.metrics == {**m, "seconds": binary_run.metrics["seconds"]}


def test_api_evaluate_gives_the_same_numbers(binary_run):
    before = json.loads((binary_run.path / "eval/test.json").read_text())
    after = api.evaluate(binary_run.path)
    before.pop("seconds"), after.pop("seconds")
    assert json.loads(json.dumps(after)) == before


def test_regression_run_has_the_regression_set(tmp_path):
    run = api.train({"name": "lin", "data": {"source": "synthetic:linear", "batch_size": 64},
                     "model": {"name": "linear"}, "optim": {"name": "sgd", "lr": 0.1},
                     "train": {"epochs": 3}, "output": {"report": False, "tensorboard": False}},
                    run_dir=tmp_path / "run", progress=False)
    m = json.loads((run.path / "eval/test.json").read_text())
    from safetensors.torch import load_file

    t = load_file(str(run.path / "eval/test_outputs.safetensors"))
    o, y = t["outputs"].numpy().ravel(), t["targets"].numpy().ravel()
    assert len(o) == m["samples"] == 400
    assert m["mse"] == pytest.approx(mean_squared_error(y, o), rel=1e-5)
    assert m["r2"] == pytest.approx(r2_score(y, o), rel=1e-5)
    assert m["rmse"] == pytest.approx(m["mse"] ** 0.5)
    assert "per_class" not in m and "accuracy" not in m
    assert (run.path / "plots/test_predictions.png").is_file()
    assert not (run.path / "tb").exists() and not (run.path / "report.html").exists()
