"""`trainlab runs` and `trainlab runs --compare` on two tiny regression runs that differ only in
the optimizer, plus a run whose process was killed (env.json still says running)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

RECIPE = """\
name: lin
seed: 0
data: {source: "synthetic:linear", batch_size: 64}
model: {name: linear}
optim: {name: sgd, lr: 0.05}
train: {epochs: 3}
output: {report: false, tensorboard: false}
"""


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200"}
    p = subprocess.run([sys.executable, "-m", "trainlab", *args], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"trainlab {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("runs")
    recipe = d / "lin.yaml"
    recipe.write_text(RECIPE)
    cli("train", str(recipe), "--run-dir", str(d / "a"))
    cli("train", str(recipe), "--set", "optim.name=adamw", "--run-dir", str(d / "b"))
    return d


def test_compare_shows_exactly_the_optimizer_difference(root):
    c = json.loads(cli("runs", str(root), "--compare", "a", "b", "--json").stdout)
    assert c["runs"] == ["a", "b"]
    assert c["differences"] == {"optim.name": ["sgd", "adamw"]}
    m = c["metrics"]
    assert m["epochs"] == [3, 3] and m["status"] == ["finished", "finished"]
    for key in ("best val.loss", "test mse", "test r2"):
        assert len(m[key]) == 2 and all(isinstance(v, float) for v in m[key]), key
    assert m["test mse"][0] != m["test mse"][1]  # different optimizers, different results
    plot = Path(c["plot"])
    assert plot == root / "compare.png" and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    text = cli("runs", str(root), "--compare", str(root / "a"), str(root / "b"), "--plot",
               str(root / "cmp.png")).stdout
    diff_table = text.split("final metrics")[0]
    assert "optim.name" in diff_table and "sgd" in diff_table and "adamw" in diff_table
    rows = [line for line in diff_table.splitlines() if line.startswith("│")]
    assert len(rows) == 1, diff_table  # exactly one recipe key differs
    assert (root / "cmp.png").is_file()


def test_runs_table_and_a_killed_run(root):
    # a copy of run a whose process died without updating env.json (as after SIGKILL)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    shutil.copytree(root / "a", root / "killed")
    env = json.loads((root / "killed/env.json").read_text())
    env.update(status="running", pid=dead.pid, end=None)
    (root / "killed/env.json").write_text(json.dumps(env))

    rows = {r["run"]: r for r in json.loads(cli("runs", str(root), "--json").stdout)}
    assert set(rows) == {"a", "b", "killed"}
    assert rows["a"]["status"] == "finished" and not rows["a"]["stale"]
    assert rows["killed"]["status"] == "interrupted" and rows["killed"]["stale"]
    assert rows["a"]["optimizer"] == "sgd lr=0.05" and rows["b"]["optimizer"] == "adamw lr=0.05"
    assert rows["a"]["model"] == "linear" and rows["a"]["epochs"] == rows["a"]["epochs_planned"] == 3
    assert rows["a"]["monitor"] == "val.loss" and rows["a"]["test_metric"] == "r2"
    test = json.loads((root / "a/eval/test.json").read_text())
    assert rows["a"]["test"] == test["r2"]
    text = cli("runs", str(root)).stdout
    assert "interrupted †" in text and "no longer exists" in text


def test_a_metric_that_does_not_fit_the_task_is_refused_before_anything_is_written(tmp_path):
    recipe = tmp_path / "lin.yaml"
    recipe.write_text(RECIPE)
    p = cli("train", str(recipe), "--set", "train.metrics=[mse,accuracy]", "--run-dir", str(tmp_path / "r"),
            check=False)
    assert p.returncode == 2
    assert p.stderr.strip() == ("trainlab: error: train.metrics[1]: 'accuracy' is a classification metric "
                                "but this data is regression")
    assert not (tmp_path / "r").exists()
    p = cli("runs", str(tmp_path / "nowhere"), check=False)
    assert p.returncode == 2 and "nowhere: no such folder" in p.stderr
