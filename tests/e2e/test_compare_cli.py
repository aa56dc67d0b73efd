"""`trainlab compare` end to end on synthetic:addition: every optimizer reaches the target and the
table ranks them by steps to it; the folder holds compare.json, table.md, valid PNGs and report.html;
re-running (here or with 2 workers) reproduces every metric; bad arguments exit 2 with one line."""
import itertools
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_cli

OPTIMIZERS = "sgd,adam,rmsprop,adagrad,adadelta"
RECIPE = """name: addition
seed: 0
data: {source: "synthetic:addition", n: 600, batch_size: 16}
model: {name: linear}
loss: {name: mse}
optim: {name: sgd, lr: 0.05}
train: {epochs: 6, threads: 1}
"""
ARGS = ("--optimizers", OPTIMIZERS, "--seeds", "2", "--target", "val.loss=0.01")
TIMING = ("seconds", "ms_per_step")  # wall-clock keys: seconds, seconds_to_target_mean, ms_per_step_std ...


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    recipe = tmp / "addition.yaml"
    recipe.write_text(RECIPE + f"output: {{root: {tmp / 'runs'}}}\n")
    r = run_cli("compare", recipe, *ARGS, "--out", tmp / "out", cwd=tmp)
    assert r.returncode == 0, r.stderr
    return tmp, recipe, r, json.loads((tmp / "out" / "compare.json").read_text())


def metrics_only(x):
    """compare.json without wall times, timestamps and the worker count."""
    if isinstance(x, dict):
        return {k: metrics_only(v) for k, v in x.items()
                if not any(t in k for t in TIMING) and k not in ("created", "workers", "protocol")}
    if isinstance(x, list):
        return [metrics_only(v) for v in x]
    return x


def test_every_optimizer_reaches_the_target_and_the_table_ranks_by_steps(first):
    tmp, _, r, data = first
    rows = data["table"]
    assert [r["optimizer"] for r in rows] != [] and {r["optimizer"] for r in rows} == set(OPTIMIZERS.split(","))
    assert all(row["reached"] == 2 and row["seeds"] == 2 for row in rows)
    steps = [row["steps_to_target_mean"] for row in rows]
    assert steps == sorted(steps) and [row["rank"] for row in rows] == [1, 2, 3, 4, 5]
    for a, b in itertools.pairwise(rows):  # ties on steps go to the better (lower) final val.loss
        if a["steps_to_target_mean"] == b["steps_to_target_mean"]:
            assert a["final_mean"] <= b["final_mean"]
    every = data["settings"]["eval_every"]
    assert every == 3  # about 10 checks in an epoch of 27 steps
    assert all(run["reached"] and run["steps_to_target"] % every == 0 for run in data["runs"])
    # the terminal table and table.md show the same ranking
    md = (tmp / "out" / "table.md").read_text().splitlines()
    assert [line.split("|")[2].strip() for line in md[2:]] == [row["optimizer"] for row in rows]
    assert "steps to target" in r.stdout and rows[0]["optimizer"] in r.stdout


def test_fair_by_construction_and_the_protocol_says_so(first):
    _, _, _, data = first
    assert data["fairness"]["same_data_order_and_init_per_seed"] is True
    per_seed = {}
    for run in data["runs"]:
        per_seed.setdefault(run["seed"], set()).add(json.dumps(run["fingerprint"], sort_keys=True))
    assert sorted(per_seed) == [0, 1] and all(len(v) == 1 for v in per_seed.values())
    assert per_seed[0] != per_seed[1]
    text = " ".join(data["protocol"])
    assert "same batch order" in text and "same initial weights" in text and "6 epochs per run" in text


def test_output_folder_has_json_table_valid_pngs_and_report(first):
    tmp, _, _, data = first
    out = tmp / "out"
    for name in ("compare.json", "table.md", "base_recipe.yaml", "report.html"):
        assert (out / name).is_file()
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == ["convergence_epochs.png", "convergence_seconds.png", "lr_sensitivity.png"]
    for p in (out / "plots").glob("*.png"):
        with Image.open(p) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 300
    html = (out / "report.html").read_text()
    assert "Optimizer comparison" in html and "Protocol" in html and html.count("data:image/png;base64,") == 3
    assert "<script" not in html and "http" not in html.split("</style>")[1]
    # the chosen LRs come from each optimizer's own search
    for name, lr in data["chosen_lr"].items():
        assert lr in [s["lr"] for s in data["search"] if s["optimizer"] == name]
    assert not list(tmp.glob(".out.*"))  # no temporary folder left behind


def test_rerunning_reproduces_every_metric_and_two_workers_give_the_same(first):
    tmp, recipe, _, data = first
    r = run_cli("compare", recipe, *ARGS, "--out", tmp / "again", "--workers", "2", cwd=tmp)
    assert r.returncode == 0, r.stderr
    again = json.loads((tmp / "again" / "compare.json").read_text())
    assert again["settings"]["workers"] == 2
    assert metrics_only(again) == metrics_only(data)
    assert (tmp / "again" / "table.md").read_text().split("seconds to target")[0] == \
        (tmp / "out" / "table.md").read_text().split("seconds to target")[0]


@pytest.mark.parametrize("args, message", [
    (("--optimizers", "sgd,adamm"), "--optimizers: unknown optimizer 'adamm'; did you mean 'adam'"),
    (("--target", "val.loss"), "--target 'val.loss': expected METRIC=VALUE"),
    (("--target", "val.accuracy=0.9"), "--target val.accuracy: not logged each epoch by this recipe"),
])
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(tmp_path, args, message):
    recipe = tmp_path / "addition.yaml"
    recipe.write_text(RECIPE + f"output: {{root: {tmp_path / 'runs'}}}\n")
    r = run_cli("compare", recipe, "--optimizers", "sgd", *args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr
    assert not (tmp_path / "runs").exists()


def test_out_folder_that_is_not_empty_is_refused(tmp_path):
    recipe = tmp_path / "addition.yaml"
    recipe.write_text(RECIPE)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    r = run_cli("compare", recipe, "--optimizers", "sgd", "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2 and "--out" in r.stderr and "nothing is overwritten" in r.stderr
    assert sorted(p.name for p in Path(tmp_path / "out").iterdir()) == ["keep.txt"]
