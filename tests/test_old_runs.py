"""Run directories written by trainlab before the build stage (commit 73b02f1) still resume and load.

tests/fixtures/run-from-73b02f1 was made by tests/fixtures/make_run_from_73b02f1.py on that commit:
a 3-epoch run stopped by SIGTERM after its first epoch. Resumed by today's code it must end
bitwise as today's code ends the same recipe uninterrupted."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

import trainlab
from trainlab.api import load_run

OLD = Path(__file__).parent / "fixtures" / "run-from-73b02f1"


def test_an_old_interrupted_run_resumes_bitwise(tmp_path):
    run_dir = tmp_path / "old"
    shutil.copytree(OLD, run_dir)
    resumed = trainlab.resume(run_dir, progress=False)
    recipe = trainlab.load_recipe(OLD / "recipe.yaml", [f"output.root={tmp_path / 'runs'}"])
    straight = trainlab.train(recipe, progress=False)
    a = load_file(str(resumed.path / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(straight.path / "checkpoints" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["accuracy"] == straight.metrics["accuracy"]
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


def test_an_old_run_loads_without_data_info_json(tmp_path):
    run_dir = tmp_path / "old"
    shutil.copytree(OLD, run_dir)
    assert not (run_dir / "data" / "info.json").exists()
    loaded = load_run(run_dir, "last")
    assert loaded.info.input_shape == (2,) and loaded.info.num_classes == 3
    assert loaded.model(torch.zeros(4, 2)).shape == (4, 3)
