"""Issue 19: a new user's own table against the scikit-learn baseline anyone runs first, on the
same split. The recipe `trainlab init` writes for the table must come within a point of
LogisticRegression on the breast-cancer CSV and match Ridge regression on the diabetes CSV, mean
over seeds 0, 1, 2 (the shipped recipes/breast_cancer_csv.yaml too); every evaluation shows the
trivial baseline beside the model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

import yaml

import trainlab
from trainlab.recipe import read_yaml
from trainlab.starter import inspect_data

REPO = Path(__file__).resolve().parents[2]
BREAST_CANCER = REPO / "recipes" / "breast_cancer_csv.yaml"
SEEDS = (0, 1, 2)



def init_recipe(csv: Path, target: str | None = None) -> dict:
    """The recipe `trainlab init CSV` writes (its data path made absolute, as the tests run elsewhere)."""
    recipe = yaml.safe_load(inspect_data(csv, target).yaml())
    recipe["data"]["path"] = str(csv)
    return recipe


def _run(recipe: dict, seed: int, tmp_path: Path) -> trainlab.Run:
    recipe = {**recipe, "seed": seed, "train": {**recipe.get("train", {}), "threads": 1},
              "output": {"root": str(tmp_path), "plots": False, "report": False}}
    return trainlab.train(recipe, run_dir=tmp_path / f"seed{seed}", progress=False)


def _sklearn_on_same_split(run: trainlab.Run, csv: Path, target: str, model) -> tuple[np.ndarray, np.ndarray]:
    """Fit `model` on the rows trainlab trained and validated on (the user's 80%), predict its test rows."""
    idx = load_file(str(run.path / "data" / "split_indices.safetensors"))
    df = pd.read_csv(csv)
    x, y = df.drop(columns=[target]).to_numpy(), df[target].to_numpy()
    fit = np.concatenate([idx["train"].numpy(), idx["val"].numpy()])
    test = idx["test"].numpy()
    assert len(test) == run.metrics["samples"]
    return model.fit(x[fit], y[fit]).predict(x[test]), y[test]


@pytest.mark.parametrize("which", ["init", "shipped"])
def test_breast_cancer_csv_within_a_point_of_logistic_regression(tmp_path, which):
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    csv = REPO / "recipes" / "data" / "breast_cancer.csv"
    recipe = init_recipe(csv) if which == "init" else read_yaml(BREAST_CANCER)
    assert recipe["data"]["target"] == "diagnosis"  # init found it by its name
    recipe["data"]["path"] = str(csv)
    ours, theirs = [], []
    for seed in SEEDS:
        run = _run(recipe, seed, tmp_path)
        pred, y = _sklearn_on_same_split(run, csv, "diagnosis", make_pipeline(StandardScaler(), LogisticRegression()))
        ours.append(run.metrics["accuracy"])
        theirs.append(accuracy_score(y, pred))
        # the majority-class baseline in eval/test.json is scikit-learn's, fitted on the training split
        idx = load_file(str(run.path / "data" / "split_indices.safetensors"))
        labels = pd.read_csv(csv)["diagnosis"].to_numpy()
        dummy = DummyClassifier(strategy="most_frequent").fit(labels[idx["train"].numpy()].reshape(-1, 1),
                                                              labels[idx["train"].numpy()])
        base = json.loads((run.path / "eval" / "test.json").read_text())["baseline"]
        dp = dummy.predict(y.reshape(-1, 1))
        assert base["class"] == dummy.classes_[dummy.class_prior_.argmax()]
        assert base["accuracy"] == pytest.approx(accuracy_score(y, dp))
        assert base["f1_macro"] == pytest.approx(f1_score(y, dp, average="macro"))
    print(f"breast cancer ({which}): trainlab {np.mean(ours):.4f} {ours}, logistic regression {np.mean(theirs):.4f}")
    assert np.mean(ours) >= np.mean(theirs) - 0.01, (ours, theirs)


def test_diabetes_csv_matches_ridge_regression(tmp_path):
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    csv = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(csv, index=False)  # columns age ... s6, target (25-346)
    recipe = init_recipe(csv)
    assert (recipe["data"]["target"], recipe["data"]["task"]) == ("target", "regression")
    ours, theirs = [], []
    for seed in SEEDS:
        run = _run(recipe, seed, tmp_path)
        pred, y = _sklearn_on_same_split(run, csv, "target", make_pipeline(StandardScaler(), Ridge(alpha=1.0)))
        ours.append(run.metrics["r2"])
        theirs.append(r2_score(y, pred))
        # in the target's own units: the MSE of the saved outputs, and a training-mean baseline near R² 0
        out = load_file(str(run.path / "eval" / "test_outputs.safetensors"))
        assert run.metrics["mse"] == pytest.approx(mean_squared_error(out["targets"].numpy(), out["outputs"].numpy()),
                                                   rel=1e-5)
        assert abs(float(out["targets"].mean()) - y.mean()) < 1e-3
        base = run.metrics["baseline"]
        idx = load_file(str(run.path / "data" / "split_indices.safetensors"))
        train_mean = pd.read_csv(csv)["target"].to_numpy()[idx["train"].numpy()].mean()
        assert base["mean"] == pytest.approx(train_mean, rel=1e-5)
        assert base["mse"] == pytest.approx(mean_squared_error(y, np.full_like(y, train_mean)), rel=1e-4)
        assert abs(base["r2"]) < 0.05 and run.metrics["r2"] > base["r2"] + 0.2
    print(f"diabetes (init): trainlab R² {np.mean(ours):.4f} {ours}, ridge {np.mean(theirs):.4f}")
    assert np.mean(ours) >= np.mean(theirs), (ours, theirs)


def test_train_and_evaluate_print_the_baseline_and_the_picked_epoch(cli, tmp_path):
    r = cli("train", BREAST_CANCER, "--set", f"output.root={tmp_path / 'runs'}", "--set", "train.epochs=5",
            "--set", "output.plots=false", cwd=REPO)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    base = next(line for line in lines if line.startswith("baseline ("))
    assert "most frequent training class" in base and "accuracy 0.6" in base and "(model 0.9" in base
    run = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    env = json.loads((run / "env.json").read_text())
    assert f"best: {env['best']['reason']}" in lines and env["best"]["reason"].startswith(f"epoch {env['best']['epoch']} — ")
    r = cli("evaluate", run, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert any(line.startswith("baseline (always 'benign'") for line in r.stdout.splitlines())
