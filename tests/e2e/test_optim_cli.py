"""Optimizer options at the command line: a mistyped key is one line and exit status 2."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_mistyped_optimizer_option_exits_2_naming_key_and_accepted_ones(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    res = subprocess.run([sys.executable, "-m", "trainlab", "train", str(REPO / "recipes/fashion_mnist_cnn.yaml"),
                          "--set", "optim.momentun=0.9", "--set", f"output.root={tmp_path}/runs"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("trainlab: error: optim.momentun: unknown key for optimizer 'sgd'; accepted: ")
    accepted = lines[0].split("accepted: ", 1)[1].split(", ")
    assert {"momentum", "dampening", "nesterov", "lr", "weight_decay"} <= set(accepted)
    assert not (tmp_path / "runs").exists()
