"""Issue 17: every rich table trainlab prints shows user-derived names as written, on a terminal too:
no MarkupError from `[/x]`, no hyperlink (OSC 8) from `[link=...]`. One data table of (table, the
names it must show)."""
from __future__ import annotations

import io

import optuna
import pytest
from rich.console import Console

from trainlab.compare.table import rich_table
from trainlab.describe import print_summary
from trainlab.track.tables import metrics_table, per_class_table, runs_table, side_by_side
from trainlab.tune.report import trials_table

CLOSE = "[/x]"
LINK = "[link=https://evil.example]x[/link]"


def render(renderable=None, print_with=None) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=300, color_system="truecolor")
    print_with(console) if print_with else console.print(renderable)
    return out.getvalue()


def visible(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.create_study(study_name=f"study {CLOSE}", direction="maximize")
    s.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={"optim.lr": 0.1},
                                          distributions={"optim.lr": optuna.distributions.FloatDistribution(
                                              1e-3, 1.0)},
                                          user_attrs={"error": f"DataError: {LINK}"}))
    return s


ROW = {"run": LINK, "date": "2026-01-01 10:00", "model": CLOSE, "optimizer": "adamw lr=0.001", "epochs": 1,
       "epochs_planned": 1, "monitor": "val.accuracy", "best": 0.5, "test_metric": "accuracy", "test": 0.5,
       "duration_s": 3.0, "status": "finished", "stale": False}
PER_CLASS = {"class": LINK, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3, "auroc": 1.0,
             "average_precision": 1.0}
COMPARE_ROW = {"rank": 1, "optimizer": CLOSE, "diverged": 0, "lr": 0.01, "reached": 0, "seeds": 1,
               "final_mean": 0.5, "final_std": 0.0, "best_mean": 0.5, "best_std": 0.0,
               "final_train_loss_mean": 0.1, "final_train_loss_std": 0.0, "ms_per_step_mean": 1.0,
               "ms_per_step_std": 0.0}
SUMMARY = {"source": f"csv {CLOSE}", "task": "classification", "kind": "vector", "input_shape": [2],
           "loader": "memory", "train_megabytes": 0.01, "sizes": {"train": 3}, "num_classes": 2,
           "class_names": [CLOSE, LINK], "class_counts": {"train": [1, 2]},
           "stats": {"normalize": {"method": "standard", "shift": [0.0, 1.0], "scale": [1.0, 1.0]}},
           "feature_names": [CLOSE, LINK], "notes": [f"dropped 1 row of {LINK}"]}

CASES = {
    "metrics_table": (lambda: metrics_table({f"val.{CLOSE}": 0.5}, f"test {LINK}"), [f"val.{CLOSE}", f"test {LINK}"]),
    "per_class_table": (lambda: per_class_table([PER_CLASS]), [LINK]),
    "runs_table": (lambda: runs_table([ROW], f"runs in {CLOSE}"), [LINK, CLOSE, f"runs in {CLOSE}"]),
    "side_by_side": (lambda: side_by_side("recipe differences", "key", [LINK, CLOSE], {"name": [CLOSE, LINK]}),
                     [LINK, CLOSE]),
    "compare rich_table": (lambda: rich_table([COMPARE_ROW], "val.loss", None, f"compare {LINK}"),
                           [CLOSE, f"compare {LINK}"]),
    "tune trials_table": (lambda: trials_table(study(), "val.accuracy"), [f"study {CLOSE}", LINK]),
    "data print_summary": (None, [f"csv {CLOSE}", CLOSE, LINK, f"dropped 1 row of {LINK}"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_table_shows_user_names_as_written_on_a_terminal(name):
    make, names = CASES[name]
    out = render(print_with=lambda c: print_summary(c, SUMMARY)) if make is None else render(make())
    assert "\x1b]8;" not in out  # no hyperlink
    shown = visible(out)
    assert all(n in shown for n in names), shown
