"""Adding a loss, a metric, a tracker and a command is one registration each: the throw-away entries
below are registered once, then seen by `trainlab list`, by the recipe schema (a recipe naming them
validates, one naming a typo does not) and by the command line — nothing else is edited."""
from __future__ import annotations

import argparse
import json
import re

import pytest
import torch
from torch import nn

from trainlab.api import train
from trainlab.cli import main
from trainlab.commands import COMMANDS, Command
from trainlab.errors import RecipeError
from trainlab.events import Callback
from trainlab.losses import LOSSES
from trainlab.metrics import METRICS
from trainlab.recipe import load_recipe
from trainlab.track.trackers import TRACKERS

EVENTS: list[str] = []


class _Halved(nn.Module):
    """Half the cross-entropy: trains like it, and its logged loss is exactly half of it."""

    def forward(self, out, y):
        return 0.5 * nn.functional.cross_entropy(out, y)


def halved_ce() -> nn.Module:
    return _Halved()


def error_rate(c) -> float:
    return float((c.preds != c.target).float().mean())


class Recorder(Callback):
    def on_fit_start(self, trainer) -> None:
        EVENTS.append("start")

    def on_epoch_end(self, trainer, logs) -> None:
        EVENTS.append(f"epoch {logs['epoch']} {logs['val.error_rate']:.4f}")

    def on_fit_end(self, trainer) -> None:
        EVENTS.append("end")


def hello_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("who")


def hello_run(args) -> int:
    print(f"hello {args.who}")
    return 0


@pytest.fixture
def registered():
    """One registration of each kind; all removed afterwards so no other test sees them."""
    LOSSES.add("halved_ce", halved_ce, "half the softmax cross-entropy (a test loss)")
    METRICS.add("error_rate", error_rate, "share of wrong predictions (a test metric)",
                task="classification", higher_is_better=False, needs_probs=False)
    TRACKERS.add("recorder", Recorder, "keeps the events it sees (a test tracker)")
    COMMANDS.add(Command("hello", "greet (a test command)", hello_arguments, hello_run))
    EVENTS.clear()
    yield
    LOSSES.remove("halved_ce")
    METRICS.remove("error_rate")
    TRACKERS.remove("recorder")
    COMMANDS.remove("hello")


def _recipe(tmp_path, **over):
    r = {"seed": 0, "data": {"source": "synthetic:classification", "batch_size": 64},
         "model": {"name": "mlp", "widths": [16]}, "train": {"epochs": 2, "metrics": ["accuracy", "error_rate"],
                                                             "monitor": "val.error_rate"},
         "loss": {"name": "halved_ce"},
         "output": {"root": str(tmp_path / "runs"), "trackers": ["recorder"], "plots": False, "report": False}}
    for key, value in over.items():
        section, field = key.split("__")
        r[section][field] = value
    return r


def test_each_kind_is_listed(registered, capsys):
    for kind, name in (("losses", "halved_ce"), ("metrics", "error_rate"), ("trackers", "recorder")):
        assert main(["list", kind]) == 0
        assert name in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "greet (a test command)" in capsys.readouterr().out
    assert main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"


def test_the_recipe_schema_knows_them(registered, tmp_path):
    r = load_recipe(_recipe(tmp_path))
    assert (r.loss.name, r.train.metrics, r.output.trackers) == ("halved_ce", ["accuracy", "error_rate"], ["recorder"])
    for key, bad, where in (("loss__name", "halved_cee", "loss.name"),
                            ("train__metrics", ["error_rat"], "train.metrics[0]"),
                            ("output__trackers", ["recorded"], "output.trackers.0")):
        with pytest.raises(RecipeError, match=rf"^{re.escape(where)}: .*did you mean"):
            load_recipe(_recipe(tmp_path, **{key: bad}))


def test_a_run_uses_all_three(registered, tmp_path):
    run = train(_recipe(tmp_path), progress=False)
    records = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r.get("split") == "val"]
    assert [round(r["error_rate"], 4) for r in val] == [round(1 - r["accuracy"], 4) for r in val]
    assert EVENTS[0] == "start" and EVENTS[-1] == "end"
    assert EVENTS[1:-1] == [f"epoch {r['epoch']} {r['error_rate']:.4f}" for r in val]
    # the monitor is a lower-is-better metric: best is the epoch with the fewest errors
    best = min(val, key=lambda r: r["error_rate"])
    assert run.metrics["epoch"] == best["epoch"]
    # the loss really is the registered one: half the cross-entropy of the same outputs
    from safetensors.torch import load_file

    saved = load_file(str(run.path / "eval" / "test_outputs.safetensors"))
    half = 0.5 * nn.functional.cross_entropy(saved["outputs"], saved["targets"])
    assert run.metrics["loss"] == pytest.approx(float(half), rel=1e-5)
    assert torch.isfinite(half)
