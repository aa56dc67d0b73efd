"""`trainlab lr-find` end to end on the Fashion-MNIST MLP recipe."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def trainlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "trainlab", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_lr_find_suggests_an_lr_near_one_that_trains_well(tmp_path):
    out = tmp_path / "lrf"
    # the recipe's own lr (AdamW 3e-3, one-cycle) reaches ~0.88 test accuracy in 5 epochs
    good_lr = 3e-3
    res = trainlab("lr-find", str(REPO / "recipes/fashion_mnist_mlp.yaml"), "--run-dir", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    printed = dict(re.findall(r"suggested lr \((steepest descent|minimum / 10)\): ([0-9.e+-]+)", res.stdout))
    assert set(printed) == {"steepest descent", "minimum / 10"}, res.stdout
    data = json.loads((out / "lr_find.json").read_text())
    steepest = data["suggestion"]["steepest"]
    assert float(printed["steepest descent"]) == float(f"{steepest:.3g}")
    assert good_lr / 10 <= steepest <= good_lr * 10
    assert good_lr / 10 <= data["suggestion"]["min_div10"] <= good_lr * 10
    assert (out / "plots" / "lr_find.png").stat().st_size > 10_000
    assert (out / "recipe.yaml").is_file()
    # the sweep ran until the loss blew up, not out of steps
    assert "diverged" in data["stopped"] or "not finite" in data["stopped"]


def test_lr_find_bad_recipe_key_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "lrf"
    res = trainlab("lr-find", str(REPO / "recipes/fashion_mnist_mlp.yaml"), "--set", "schedule.warmupp=0.1",
                   "--run-dir", str(out), cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "schedule.warmupp: unknown key" in res.stderr and "warmup" in res.stderr
    assert not out.exists()
