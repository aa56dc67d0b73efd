"""metrics.py against scikit-learn on the same predictions (small random data, runs in seconds)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from trainlab.errors import RecipeError
from trainlab.metrics import (check_metric_names, classification_metrics, compute_metrics, evaluate_outputs,
                              higher_is_better, metric_task)

CE = torch.nn.CrossEntropyLoss()


def _noisy_logits(n: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits that are right more often than chance, so every metric is away from its extremes."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, c, generator=g)
    logits[torch.arange(n), y] += 1.5
    return logits, y


@pytest.mark.parametrize("c", [2, 3, 10])
def test_full_classification_set_matches_sklearn(c):
    logits, y = _noisy_logits(600, c, seed=c)
    names = [f"k{i}" for i in range(c)]
    m = evaluate_outputs(logits, y, "classification", CE, c, names)
    probs = torch.softmax(logits.double(), 1).numpy()
    pred = logits.argmax(1).numpy()
    yn = y.numpy()

    assert m["samples"] == 600 and m["class_names"] == names
    assert m["loss"] == pytest.approx(float(CE(logits, y)), abs=1e-6)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(yn, pred), abs=1e-6)
    rep = skm.classification_report(yn, pred, output_dict=True, zero_division=0)
    for avg, key in (("macro", "macro avg"), ("weighted", "weighted avg")):
        for metric, sk in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert m[f"{metric}_{avg}"] == pytest.approx(rep[key][sk], abs=1e-6), (metric, avg)
    assert m["f1_micro"] == pytest.approx(skm.f1_score(yn, pred, average="micro"), abs=1e-6)
    for i, row in enumerate(m["per_class"]):
        assert row["class"] == names[i]
        assert row["support"] == rep[str(i)]["support"]
        assert row["precision"] == pytest.approx(rep[str(i)]["precision"], abs=1e-6)
        assert row["recall"] == pytest.approx(rep[str(i)]["recall"], abs=1e-6)
        assert row["f1"] == pytest.approx(rep[str(i)]["f1-score"], abs=1e-6)
        assert row["auroc"] == pytest.approx(skm.roc_auc_score(yn == i, probs[:, i]), abs=1e-9)
        assert row["average_precision"] == pytest.approx(
            skm.average_precision_score(yn == i, probs[:, i]), abs=1e-9)
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (c, c) and cm.sum() == 600
    assert (cm == skm.confusion_matrix(yn, pred, labels=list(range(c)))).all()
    if c == 2:
        assert m["auroc"] == pytest.approx(skm.roc_auc_score(yn, probs[:, 1]), abs=1e-9)
        assert m["average_precision"] == pytest.approx(skm.average_precision_score(yn, probs[:, 1]), abs=1e-9)
        assert len(m["roc"]) == 1 and m["roc"][0]["class"] == "k1"
    else:
        assert m["auroc"] == pytest.approx(skm.roc_auc_score(yn, probs, multi_class="ovr"), abs=1e-9)
        k = 5 if c > 5 else 2
        assert m[f"top{k}_accuracy"] == pytest.approx(
            skm.top_k_accuracy_score(yn, probs, k=k, labels=list(range(c))), abs=1e-6)
        assert [r["class"] for r in m["roc"]] == names
    # a curve starts at (0, 0) and ends at (1, 1) after thinning too
    roc = m["roc"][-1]
    assert roc["fpr"][0] == 0 and roc["tpr"][0] == 0 and roc["fpr"][-1] == 1 and roc["tpr"][-1] == 1
    assert len(roc["fpr"]) <= 200
    assert 0 <= m["ece"] <= 1


def test_ece_is_top_label_calibration_error():
    # hand-checkable: all predictions with confidence 0.9, 60% right -> ECE = |0.9 - 0.6| = 0.3
    n = 100
    y = torch.zeros(n, dtype=torch.long)
    y[60:] = 1
    logits = torch.zeros(n, 2)
    logits[:, 0] = float(np.log(0.9 / 0.1))
    m = compute_metrics(logits, y, "classification", CE, 2, ["ece", "accuracy"])
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["ece"] == pytest.approx(0.3, abs=1e-6)


def test_single_logit_binary_outputs():
    logits, y = _noisy_logits(300, 2, seed=7)
    one = (logits[:, 1] - logits[:, 0]).unsqueeze(1)  # sigmoid(one) == softmax(logits)[:, 1]
    bce = torch.nn.BCEWithLogitsLoss()
    m = compute_metrics(one, y, "classification", lambda o, t: bce(o[:, 0], t.float()), 2,
                        ["accuracy", "auroc"])
    ref = compute_metrics(logits, y, "classification", CE, 2, ["accuracy", "auroc"])
    assert m["accuracy"] == pytest.approx(ref["accuracy"])
    assert m["auroc"] == pytest.approx(ref["auroc"], abs=1e-9)


def test_regression_set_matches_sklearn():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(200, 1, generator=g)
    out = y + 0.3 * torch.randn(200, 1, generator=g)
    m = evaluate_outputs(out, y, "regression", torch.nn.MSELoss(), None)
    yn, on = y.numpy().ravel(), out.numpy().ravel()
    assert m["mse"] == pytest.approx(skm.mean_squared_error(yn, on), rel=1e-5)
    assert m["rmse"] == pytest.approx(skm.mean_squared_error(yn, on) ** 0.5, rel=1e-5)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(yn, on), rel=1e-5)
    assert m["r2"] == pytest.approx(skm.r2_score(yn, on), rel=1e-5)
    assert "per_class" not in m and m["task"] == "regression"


def test_compute_metrics_logs_only_what_is_asked():
    logits, y = _noisy_logits(100, 4, seed=1)
    m = compute_metrics(logits, y, "classification", CE, 4, ["f1_macro", "top2_accuracy"])
    assert set(m) == {"loss", "samples", "f1_macro", "top2_accuracy"}
    assert set(compute_metrics(logits, y, "classification", CE, 4)) == {"loss", "samples", "accuracy"}


def test_metric_names_are_checked():
    check_metric_names(classification_metrics(10), "classification", 10)
    check_metric_names(["mse", "r2"], "regression")
    with pytest.raises(RecipeError, match=r"train.metrics\[1\]: unknown metric 'f2_macro'"):
        check_metric_names(["accuracy", "f2_macro"])
    with pytest.raises(RecipeError, match=r"train.metrics\[0\]: 'r2' is a regression metric"):
        check_metric_names(["r2"], "classification", 10)
    with pytest.raises(RecipeError, match="needs 1 <= k < 3"):
        check_metric_names(["top5_accuracy"], "classification", 3)
    assert metric_task("top3_accuracy") == "classification" and metric_task("nope") is None


@pytest.mark.parametrize("name,up", [("val.accuracy", True), ("val.f1_weighted", True), ("val.auroc", True),
                                     ("val.top5_accuracy", True), ("val.loss", False), ("val.ece", False),
                                     ("val.mae", False), ("val.r2", True)])
def test_direction(name, up):
    assert higher_is_better(name) is up


def test_validation_computes_what_the_monitors_name():
    from trainlab.metrics import validation_metrics
    from trainlab.recipe import load_recipe

    r = load_recipe({"train": {"monitor": "val.f1_macro"},
                     "early_stopping": {"monitor": "val.auroc", "patience": 1}})
    assert validation_metrics(r, "classification") == ["accuracy", "f1_macro", "auroc"]
    r = load_recipe({"train": {"metrics": ["ece"], "monitor": "val.loss"}})
    assert validation_metrics(r, "classification") == ["ece"]
    assert validation_metrics(load_recipe({}), "regression") == ["mse", "rmse", "mae", "r2"]
