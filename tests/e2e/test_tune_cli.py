"""`trainlab tune` from the command line: bad search spaces exit 2, two workers share one SQLite study,
`--show` reads a study without running anything."""
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

SRC = Path(__file__).resolve().parents[2] / "src"
RECIPE = {
    "name": "lin", "seed": 0,
    "data": {"source": "synthetic:linear", "n": 600, "batch_size": 64},
    "model": {"name": "linear"}, "loss": {"name": "mse"},
    "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "train": {"epochs": 2},
    "output": {"plots": False},
    "search": {"optim.lr": {"loguniform": [0.005, 0.2]}, "optim.momentum": {"uniform": [0.0, 0.95]}},
}


def cli(*args, cwd, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "trainlab", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def recipe(tmp_path):
    def write(**changes):
        p = tmp_path / "lin.yaml"
        p.write_text(yaml.safe_dump({**RECIPE, **changes}, sort_keys=False))
        return p
    return write


def test_search_path_that_does_not_exist_exits_2_naming_it(tmp_path, recipe):
    r = cli("tune", recipe(search={"optim.learning_rate": {"loguniform": [1e-4, 1e-1]}}), "--trials", 2,
            cwd=tmp_path)
    assert r.returncode == 2
    err = r.stderr.strip()
    assert err.startswith("trainlab: error: search.optim.learning_rate: not a recipe path")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing written


def test_space_file_with_bad_path_names_the_file(tmp_path, recipe):
    space = tmp_path / "space.yaml"
    space.write_text("search:\n  model.depht: {int: [1, 3]}\n")
    r = cli("tune", recipe(), "--space", space, cwd=tmp_path)
    assert r.returncode == 2
    assert f"{space}: search.model.depht: not a recipe path; did you mean model.depth?" in r.stderr


def test_bad_flag_exits_2(tmp_path, recipe):
    r = cli("tune", recipe(), "--objective", "accuracy", cwd=tmp_path)
    assert r.returncode == 2 and "--objective 'accuracy'" in r.stderr


@pytest.mark.slow  # two worker processes, 8 trials, three CLI starts
def test_two_workers_on_one_sqlite_storage_run_each_trial_number_once(tmp_path, recipe):
    r = cli("tune", recipe(), "--trials", 8, "--workers", 2, "--sampler", "random", "--pruner", "none",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "runs" / "tune" / "lin"
    study = optuna.load_study(study_name="lin", storage=f"sqlite:///{folder / 'study.db'}")
    assert sorted(t.number for t in study.trials) == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    # both workers took trials, each in its own run directory
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2
    assert sorted(p.name for p in (folder / "trials").iterdir()) == [f"{i:04d}" for i in range(8)]
    assert "[worker 0]" in r.stdout and "[worker 1]" in r.stdout
    # threads were split between the workers and recorded, so best_recipe.yaml reproduces the trial
    best = yaml.safe_load((folder / "best_recipe.yaml").read_text())
    assert best["train"]["threads"] == max(1, (os.cpu_count() or 1) // 2)

    show = cli("tune", "--show", folder, cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "study lin: 8 of 8 trials finished (8 complete)" in show.stdout
    assert f"best trial {study.best_trial.number}: val.loss {study.best_value:.4f}" in show.stdout
    by_name = cli("tune", "--show", "lin", cwd=tmp_path)  # a name resolves under runs/tune/
    assert by_name.returncode == 0 and "8 of 8 trials finished" in by_name.stdout

    missing = cli("tune", "--show", "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "--show nope" in missing.stderr
