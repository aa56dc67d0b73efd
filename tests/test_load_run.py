"""load_run: a trained model from its run directory alone — the training data is never read.

For a Fashion-MNIST, a CSV and a text run: train, `trainlab evaluate` (its outputs go to
eval/test_outputs.safetensors), keep the test split's inputs, make the data unreachable, then
load_run's predictions on the kept inputs must equal evaluate's outputs exactly.
"""
from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import trainlab
from trainlab import data as data_pkg
from trainlab.api import load_run
from trainlab.data import SOURCES, build_data, load_preprocess_state
from trainlab.errors import RunDirError
from trainlab.recipe import load_recipe

from .conftest import needs_fmnist, run_cli


def no_data(monkeypatch, tmp_path):
    """Every way trainlab reads a data set, refused; data folders pointed at an empty one."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("TRAINLAB_DATA", str(empty))
    monkeypatch.setenv("TRAINLAB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("the data was read")

    monkeypatch.setattr(SOURCES, "build", refuse)
    monkeypatch.setattr(data_pkg, "build_data", refuse)
    monkeypatch.setattr(data_pkg.vision, "locate", refuse)
    return empty


def _train_and_evaluate(recipe: dict, tmp_path):
    run = trainlab.train(recipe, run_dir=tmp_path / "run", progress=False)
    # the end of training evaluated the trainer's own weights; `trainlab evaluate` loads them again
    at_end = load_file(str(run.path / "eval" / "test_outputs.safetensors"))["outputs"]
    res = run_cli("evaluate", run.path, "--split", "test", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    outputs = load_file(str(run.path / "eval" / "test_outputs.safetensors"))["outputs"]
    assert torch.equal(outputs, at_end)
    # the test split's inputs as the model sees them, kept before the data goes away
    r = load_recipe(run.path / "recipe.yaml")
    if (run.path / "data" / "vocab.json").is_file():
        r = load_recipe({**r.to_dict(), "data": {**r.to_dict()["data"], "vocab": str(run.path / "data/vocab.json")}})
    bundle = build_data(r.data, r.seed, load_preprocess_state(run.path))
    return run.path, outputs, bundle


def _check_loaded(path, outputs, bundle):
    loaded = load_run(path)
    assert not loaded.model.training
    assert loaded.checkpoint == "best"
    assert loaded.info.task == bundle.info.task
    assert tuple(loaded.info.input_shape) == tuple(bundle.info.input_shape)
    assert loaded.info.class_names == bundle.info.class_names
    got_recipe, saved = loaded.recipe.to_dict(), load_recipe(path / "recipe.yaml").to_dict()
    got_recipe["data"].pop("vocab", None)  # a text run reads its data with its own saved vocabulary
    saved["data"].pop("vocab", None)
    assert got_recipe == saved
    got = loaded.predict(bundle.test.x, prepared=True)
    assert got.shape == outputs.shape
    assert torch.equal(got, outputs)
    return loaded


@needs_fmnist
def test_fashion_mnist_run_loads_without_its_data(tmp_path, monkeypatch):
    recipe = {"name": "fm", "data": {"source": "fashion_mnist", "subset": 2000, "preprocess": [{"normalize": "standard"}],
                                     "batch_size": 128},
              "model": {"name": "mlp", "widths": [32]}, "train": {"epochs": 1},
              "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False, "tensorboard": False}}
    path, outputs, bundle = _train_and_evaluate(recipe, tmp_path)
    raw = SOURCES.build("fashion_mnist", {}, "data").test.x  # uint8 pixels, as the source gives them
    no_data(monkeypatch, tmp_path)
    loaded = _check_loaded(path, outputs, bundle)
    # raw pixels go through the run's own fitted normalization: the same outputs
    assert torch.equal(loaded.predict(raw), outputs)
    assert loaded.info.stats["normalize"]["method"] == "standard"
    assert loaded.class_names[0] == "T-shirt/top"
    # summary of the run directory needs no data either
    from trainlab.summary import summarize

    s = summarize(run_dir=path)
    assert s["params_total"] == 784 * 32 + 32 + 32 * 10 + 10
    assert s["input_shape"] == [1, 28, 28]


def _write_table(path, seed=0):
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "white", "rosé"], size=len(y))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(x.shape[1])] + ["colour", "kind"])
        for row, c, label in zip(x, colour, y):
            w.writerow([f"{v:.6g}" for v in row] + [c, ["barolo", "grignolino", "barbera"][label]])
    return path


def test_csv_run_loads_after_the_csv_is_moved_away(tmp_path, monkeypatch):
    table = _write_table(tmp_path / "wine.csv")
    recipe = {"name": "wine", "data": {"source": "csv", "path": str(table), "target": "kind",
                                       "preprocess": [{"normalize": "standard"}], "batch_size": 32},
              "model": {"name": "mlp", "widths": [16]}, "train": {"epochs": 3},
              "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False, "tensorboard": False}}
    path, outputs, bundle = _train_and_evaluate(recipe, tmp_path)
    shutil.move(table, tmp_path / "elsewhere.csv")
    res = run_cli("summary", path, cwd=tmp_path)  # a whole process, with the CSV gone
    assert res.returncode == 0, res.stderr
    assert "parameters:" in res.stdout
    no_data(monkeypatch, tmp_path)
    loaded = _check_loaded(path, outputs, bundle)
    assert loaded.class_names == ["barbera", "barolo", "grignolino"]
    cols = loaded.info.extra["columns"]
    assert cols["categorical"]["colour"]["categories"] == ["red", "rosé", "white"]
    assert set(cols["numeric"]) == {f"f{i}" for i in range(13)}
    assert loaded.info.input_shape == (16,)  # 13 numbers + 3 one-hot colours


def test_text_run_loads_with_its_vocabulary(tmp_path, monkeypatch):
    words = {"sport": "goal match team score win", "food": "bread cheese soup taste cook",
             "tech": "code chip data model byte"}
    rng = np.random.default_rng(0)
    rows = []
    for label, vocab in words.items():
        for _ in range(60):
            rows.append((" ".join(rng.choice(vocab.split(), size=6)), label))
    with open(tmp_path / "texts.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    recipe = {"name": "texts", "data": {"source": "text_csv", "path": str(tmp_path / "texts.csv"), "max_len": 8,
                                        "batch_size": 32},
              "model": {"name": "transformer", "dim": 16, "depth": 1, "heads": 2}, "train": {"epochs": 2},
              "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False, "tensorboard": False}}
    path, outputs, bundle = _train_and_evaluate(recipe, tmp_path)
    (tmp_path / "texts.csv").unlink()
    no_data(monkeypatch, tmp_path)
    loaded = _check_loaded(path, outputs, bundle)
    assert loaded.vocab["tokens"][:2] == ["<pad>", "<unk>"]
    assert loaded.info.extra["vocab_size"] == len(loaded.vocab["tokens"])
    assert sorted(loaded.class_names) == ["food", "sport", "tech"]


def test_load_run_names_what_is_missing(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        load_run(tmp_path)
    table = _write_table(tmp_path / "wine.csv")
    run = trainlab.train({"data": {"source": "csv", "path": str(table), "target": "kind"}, "train": {"epochs": 1},
                          "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False,
                                     "tensorboard": False}}, progress=False)
    shutil.rmtree(run.path / "checkpoints")
    with pytest.raises(RunDirError, match="no 'best' checkpoint"):
        load_run(run.path)


def test_train_with_a_given_model_starts_from_its_weights_and_load_run_rebuilds_it(tmp_path):
    """`trainlab.train(recipe, model=m)` trains m as it is (here at a learning rate too small to move
    it) instead of a fresh initialization; the run's checkpoint and `load_run` give m's weights back."""
    from trainlab.build import build_model_for
    from trainlab.data import DataInfo

    recipe = {"name": "given", "seed": 0, "data": {"source": "synthetic:linear", "n": 256},
              "model": {"name": "mlp", "widths": [8]}, "optim": {"name": "sgd", "lr": 1e-30},
              "train": {"epochs": 1},
              "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False, "trackers": []}}
    info = DataInfo(task="regression", input_shape=(1,), num_classes=None, output_dim=1, kind="vector")
    model, _ = build_model_for(load_recipe({**recipe, "seed": 7}), info, torch.device("cpu"))  # not seed 0's init
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    given = {k: v.clone() for k, v in model.state_dict().items()}
    run = trainlab.train(recipe, run_dir=tmp_path / "run", progress=False, model=model)
    loaded = load_run(run.path).model.state_dict()
    assert given.keys() == loaded.keys()
    for k in given:
        torch.testing.assert_close(loaded[k], given[k])


def test_record_writes_a_complete_run_for_a_model_as_it_is(tmp_path):
    """`trainlab.api.record(recipe, model)`: no training; the run's checkpoints hold the model's weights,
    its test metrics are those `evaluate` computes again, env.json says finished after 0 epochs."""
    import json

    from trainlab.api import evaluate, record
    from trainlab.build import build_model_for
    from trainlab.data import DataInfo

    recipe = {"name": "rec", "seed": 0, "data": {"source": "synthetic:linear", "n": 256},
              "model": {"name": "mlp", "widths": [8]}, "train": {"epochs": 3},
              "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False, "trackers": []}}
    info = DataInfo(task="regression", input_shape=(1,), num_classes=None, output_dim=1, kind="vector")
    model, _ = build_model_for(load_recipe({**recipe, "seed": 3}), info, torch.device("cpu"))
    given = {k: v.clone() for k, v in model.state_dict().items()}
    run = record(recipe, model, run_dir=tmp_path / "run")
    for which in ("best", "last"):
        weights = load_file(str(run.path / "checkpoints" / which / "model.safetensors"))
        assert weights.keys() == given.keys() and all(torch.equal(weights[k], given[k]) for k in given)
    env = json.loads((run.path / "env.json").read_text())
    assert env["status"] == "finished" and env["epochs_run"] == 0
    again = evaluate(run.path)
    assert again["mse"] == pytest.approx(run.metrics["mse"], rel=1e-6) and again["epoch"] == 0
