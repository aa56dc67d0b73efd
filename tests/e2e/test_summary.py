"""`trainlab summary`: parameter counts equal sum(p.numel()); FLOPs of an MLP equal 2·in·out per layer."""
from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def trainlab(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "140"}
    return subprocess.run([sys.executable, "-m", "trainlab", *args], check=False, capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def summary_json(recipe: Path, *sets: str) -> dict:
    proc = trainlab("summary", str(recipe), "--json", *[a for s in sets for a in ("--set", s)])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def mlp_recipe(tmp_path) -> Path:
    path = tmp_path / "mlp.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"source": "fashion_mnist", "batch_size": 64},
        "model": {"name": "mlp", "widths": [128, 64]},
        "optim": {"name": "adamw"},
    }))
    return path


def test_mlp_flops_are_exactly_two_in_out_per_linear_layer(mlp_recipe):
    s = summary_json(mlp_recipe)
    dims = [784, 128, 64, 10]
    layers = list(itertools.pairwise(dims))
    forward = sum(2 * i * o for i, o in layers)
    assert s["flops_forward_per_sample"] == forward == 2 * (784 * 128 + 128 * 64 + 64 * 10)
    # backward: a weight gradient for every layer, an input gradient for all but the first
    assert s["flops_train_step_per_sample"] == forward + forward + (forward - 2 * 784 * 128)
    assert s["flops_train_step"] == s["flops_train_step_per_sample"] * 64
    linear_rows = [r for r in s["layers"] if r["type"] == "Linear"]
    assert [r["flops_forward"] for r in linear_rows] == [2 * i * o for i, o in layers]
    assert [r["output_shape"] for r in linear_rows] == [["B", 128], ["B", 64], ["B", 10]]
    params = sum(i * o + o for i, o in layers)
    assert s["params_total"] == s["params_trainable"] == params
    mem = s["memory_bytes"]
    assert mem["weights"] == mem["gradients"] == 4 * params
    assert mem["optimizer_state"] >= 2 * 4 * params  # AdamW: two moments per weight (plus step counters)


def test_human_summary_shows_layers_totals_flops_and_memory(mlp_recipe):
    proc = trainlab("summary", str(mlp_recipe))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    params = 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert f"parameters: {params:,} total, {params:,} trainable" in out
    assert re.search(r"forward .*\(218,368\)", out)
    assert "(B, 128)" in out and "Linear" in out
    assert re.search(r"optimizer state \(adamw\) [\d.]+ KiB", out)


@pytest.mark.parametrize("recipe", ["fashion_mnist_lenet5.yaml", "fashion_mnist_resnet.yaml", "text_lstm.yaml",
                                    "text_transformer.yaml", "text_gpt.yaml"])
def test_summary_parameter_counts_match_the_built_model(recipe):
    # in-process (the CLI path is covered above): one data load per recipe
    from trainlab.data import build_data
    from trainlab.models import build_model
    from trainlab.summary import summarize
    from trainlab.recipe import load_recipe

    r = load_recipe(ROOT / "recipes" / recipe)
    bundle = build_data(r.data, r.seed)
    s = summarize(r, bundle=bundle)
    model = build_model(r.model, bundle.info)
    assert s["params_total"] == sum(p.numel() for p in model.parameters())
    assert s["flops_forward_per_sample"] > 0 and s["flops_train_step_per_sample"] > s["flops_forward_per_sample"]
    top_rows = [row for row in s["layers"] if row["depth"] == 1]
    assert sum(row["flops_forward"] for row in top_rows) == s["flops_forward_per_sample"]
    top = sum(row["params"] for row in top_rows)
    if recipe != "text_gpt.yaml":  # the GPT head shares the embedding's matrix: counted in both rows
        assert top == s["params_total"]


def test_summary_of_a_bad_recipe_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "synthetic:linear"}, "model": {"name": "resnet"}}))
    proc = trainlab("summary", str(path))
    assert proc.returncode == 2
    assert "resnet needs image inputs" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
