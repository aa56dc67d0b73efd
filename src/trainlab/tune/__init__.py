"""Hyperparameter search with Optuna over recipe paths (`trainlab tune`).

space.py   the `search:` language: recipe paths -> distributions, validation, sampling
study.py   Optuna storage (SQLite or any SQLAlchemy URL, heartbeats), samplers, pruners, trial counts
worker.py  one worker: claim a trial, train it as a full trainlab run, report epochs, record the outcome
runner.py  `tune()`: validate, open the study, run K workers, write the outputs; `show()`
report.py  table of trials, best_recipe.yaml, trials.csv, plots and the study's report.html
"""
from __future__ import annotations

from ..recipe import Param, SearchSpace, parse_space

__all__ = ["Param", "SearchSpace", "parse_space", "show", "tune"]


def tune(*args, **kwargs):
    """See `trainlab.tune.runner.tune` (imported on use: Optuna is not needed to load a recipe)."""
    from .runner import tune as _tune

    return _tune(*args, **kwargs)


def show(*args, **kwargs):
    """See `trainlab.tune.runner.show`."""
    from .runner import show as _show

    return _show(*args, **kwargs)
