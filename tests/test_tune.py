"""tune() in-process on tiny data: outcomes are recorded states, best_recipe.yaml reproduces its trial."""
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from trainlab.api import train
from trainlab.recipe import load_recipe
from trainlab.tune import tune
from trainlab.recipe import parse_space
from trainlab.tune.worker import ObjectiveError, TuneSettings, run_trial

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
LINEAR = {
    "name": "lin", "seed": 0,
    "data": {"source": "synthetic:linear", "n": 600, "batch_size": 64},
    "model": {"name": "linear"}, "loss": {"name": "mse"},
    "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "train": {"epochs": 2},
    "output": {"plots": False},
}


def load(study_dir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir / 'study.db'}")


def test_failed_trial_is_recorded_with_its_error_and_the_study_goes_on(tmp_path):
    # cuda:99 passes the schema but cannot be built anywhere: a runtime failure of one trial
    recipe = {**LINEAR, "search": {"train.device": {"choice": ["cpu", "cuda:99"]}}}
    res = tune(recipe, trials=2, run_dir=tmp_path / "s", sampler="grid", say=lambda m: None)
    study = load(tmp_path / "s", "lin")
    states = {t.params["train.device"]: t for t in study.trials}
    assert states["cpu"].state == TrialState.COMPLETE and states["cuda:99"].state == TrialState.FAIL
    assert states["cuda:99"].user_attrs["error"]  # the exception's one-line message is kept
    assert res.status == "done" and res.finished == 2 and res.best_number == states["cpu"].number
    best = yaml.safe_load((tmp_path / "s" / "best_recipe.yaml").read_text())
    assert best["train"]["device"] == "cpu" and "search" not in best
    for f in ("trials.csv", "report.html", "summary.json", "study.json"):
        assert (tmp_path / "s" / f).is_file()
    assert "cuda:99" in (tmp_path / "s" / "trials.csv").read_text()


def test_pruned_trial_is_recorded_as_pruned(tmp_path):
    base = load_recipe({**LINEAR, "train": {"epochs": 3}}).to_dict()
    space_raw = {"optim.lr": {"loguniform": [0.01, 0.1]}}
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.ThresholdPruner(upper=1e-12))
    s = TuneSettings(recipe=base, space=space_raw, study="x", storage="", study_dir=str(tmp_path), trials=1,
                     objective="val.loss", direction="minimize")
    state = run_trial(study, study.ask(), s, parse_space(space_raw, base), say=lambda m: None)
    t = study.trials[0]
    assert state == "pruned" and t.state == TrialState.PRUNED
    assert list(t.intermediate_values) == [1] and t.user_attrs["epochs"] == 1
    env = yaml.safe_load((tmp_path / "trials" / "0000" / "env.json").read_text())
    assert env["status"] == "pruned"


def test_objective_that_is_not_logged_stops_the_study(tmp_path):
    recipe = {**LINEAR, "search": {"optim.lr": {"loguniform": [0.01, 0.1]}}}
    with pytest.raises(ObjectiveError, match="'val.accuracy' is not logged.*val.loss"):
        tune(recipe, trials=3, run_dir=tmp_path / "s", objective="val.accuracy", say=lambda m: None)
    study = load(tmp_path / "s", "lin")
    assert [t.state for t in study.trials] == [TrialState.FAIL]


@pytest.mark.slow  # four Fashion-MNIST loads
@pytest.mark.skipif(not FMNIST.is_file(), reason="Fashion-MNIST not installed")
def test_best_recipe_reproduces_the_best_trials_validation_accuracy(tmp_path):
    recipe = {
        "name": "fm", "seed": 0,
        "data": {"source": "fashion_mnist", "subset": 1500, "val_fraction": 0.1,
                 "preprocess": [{"normalize": "standard"}], "batch_size": 64},
        "model": {"name": "mlp", "widths": [32]}, "optim": {"name": "adamw", "lr": 3e-3},
        "train": {"epochs": 1}, "output": {"plots": False, "root": str(tmp_path / "runs")},
        "search": {"optim.lr": {"loguniform": [1e-3, 1e-2]}, "data.batch_size": {"choice": [32, 64]}},
    }
    res = tune(recipe, trials=3, run_dir=tmp_path / "s", sampler="random", pruner="none", say=lambda m: None)
    study = load(tmp_path / "s", "fm")
    assert res.finished == 3 and study.best_trial.number == res.best_number
    assert study.trials[0].user_attrs.get("baseline") is True  # the recipe as written is trial 0
    run = train(tmp_path / "s" / "best_recipe.yaml", run_dir=tmp_path / "again", progress=False)
    assert max(h["val.accuracy"] for h in run.history) == study.best_value
