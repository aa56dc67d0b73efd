"""The Optuna glue: samplers and pruners by name, what counts as a finished trial, storage URLs."""
import importlib.util
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from trainlab.recipe import parse_space
from trainlab.tune.study import (
    SAMPLERS,
    TuneError,
    claim_lock,
    make_pruner,
    make_sampler,
    open_storage,
    progress,
    sqlite_path,
)

SPACE = parse_space({"optim.lr": {"loguniform": [1e-3, 1e-1]}, "data.batch_size": {"choice": [32, 64]}})


@pytest.mark.parametrize("name, cls", [
    ("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler),
    ("cmaes", optuna.samplers.CmaEsSampler),
])
def test_samplers_by_name(name, cls):
    if name == "cmaes" and importlib.util.find_spec("cmaes") is None:
        with pytest.raises(TuneError, match="--sampler cmaes needs the `cmaes` package"):
            make_sampler(name, SPACE, 0, 10)
        return
    assert isinstance(make_sampler(name, SPACE, 0, 10), cls)


def test_grid_sampler_needs_an_enumerable_space():
    grid = make_sampler("grid", parse_space({"data.batch_size": {"choice": [32, 64]}}), 0, 10)
    assert isinstance(grid, optuna.samplers.GridSampler) and len(grid._all_grids) == 2
    with pytest.raises(Exception, match="grid needs a choice list"):
        make_sampler("grid", SPACE, 0, 10)
    with pytest.raises(TuneError, match="--sampler 'bogus'"):
        make_sampler("bogus", SPACE, 0, 10)
    assert set(SAMPLERS) == {"tpe", "random", "grid", "cmaes"}


@pytest.mark.parametrize("name, cls", [
    ("median", optuna.pruners.MedianPruner), ("asha", optuna.pruners.SuccessiveHalvingPruner),
    ("hyperband", optuna.pruners.HyperbandPruner), ("none", optuna.pruners.NopPruner),
])
def test_pruners_by_name(name, cls):
    assert isinstance(make_pruner(name, epochs=4), cls)


def test_failed_trials_that_were_retried_do_not_count_as_finished():
    d = {"x": FloatDistribution(0, 1)}
    trials = [
        create_trial(state=TrialState.COMPLETE, value=1.0, params={"x": 0.1}, distributions=d),
        create_trial(state=TrialState.PRUNED, params={"x": 0.2}, distributions=d),
        create_trial(state=TrialState.FAIL, params={"x": 0.3}, distributions=d),           # an error: counts
        create_trial(state=TrialState.FAIL, params={"x": 0.4}, distributions=d),           # died: retried
        create_trial(state=TrialState.WAITING, params={"x": 0.4}, distributions=d,
                     system_attrs={"failed_trial": 3, "retry_history": [3]}),
        create_trial(state=TrialState.RUNNING, params={"x": 0.5}, distributions=d),
    ]
    for i, t in enumerate(trials):
        t.number = i
    p = progress(trials)
    assert (p.finished, p.running, p.waiting) == (3, 1, 1)
    assert p.by_state == {"complete": 1, "pruned": 1, "fail": 2, "waiting": 1, "running": 1}


def test_sqlite_storage_has_heartbeats_and_a_busy_timeout(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert sqlite_path(url) == tmp_path / "study.db" and sqlite_path("postgresql://h/db") is None
    storage = open_storage(url, heartbeat=5)
    assert storage.heartbeat_interval == 5 and storage.grace_period == 10
    assert isinstance(storage.get_heartbeat_stale_trial_callback(), optuna.storages.RetryHeartbeatStaleTrialCallback)
    with claim_lock(storage, "s"):
        assert Path(str(tmp_path / "study.db") + ".lock").is_file()
    with pytest.raises(TuneError, match="--storage nosuchdb://x: cannot open"):
        open_storage("nosuchdb://x")
