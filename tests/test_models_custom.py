"""`model: custom`: a user's nn.Module from a module file or an importable module."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from trainlab.data import DataInfo
from trainlab.errors import RecipeError
from trainlab.models import MODELS
from trainlab.recipe import load_recipe

SRC = Path(__file__).resolve().parents[1] / "src"
INFO = DataInfo("classification", (3, 8, 8), 5, 5, "image")

MODULE = textwrap.dedent('''
    from torch import nn

    class Net(nn.Module):
        """Sizes from trainlab (input_shape, num_classes), width from the recipe's args."""
        def __init__(self, input_shape, num_classes, width=4):
            super().__init__()
            self.width = width
            self.body = nn.Sequential(nn.Conv2d(input_shape[0], width, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

        def forward(self, x):
            return self.body(x)

    def make_net(info, width=4):
        return Net(info.input_shape, info.output_dim, width)

    def not_a_model():
        return 42
''')


@pytest.fixture
def module_file(tmp_path):
    path = tmp_path / "user_nets.py"
    path.write_text(MODULE)
    return path


def test_custom_loads_a_class_from_a_module_file(module_file):
    model = MODELS.build("custom", {"import": f"{module_file}:Net", "args": {"width": 6}}, "model", info=INFO)
    assert type(model).__name__ == "Net" and model.width == 6
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 5)


def test_custom_loads_a_factory_from_an_importable_module(module_file, monkeypatch):
    monkeypatch.syspath_prepend(str(module_file.parent))
    model = MODELS.build("custom", {"import": "user_nets:make_net"}, "model", info=INFO)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 5) and model.width == 4


def test_custom_recipe_validates_and_applies_init(module_file):
    recipe = load_recipe({"model": {"name": "custom", "import": f"{module_file}:Net", "init": "normal"}})
    assert recipe.model.options()["import"].endswith("user_nets.py:Net")
    model = MODELS.build("custom", recipe.model.options(), "model", info=INFO)
    assert abs(float(model.body[4].weight.detach().std()) - 0.02) < 0.01


@pytest.mark.parametrize("target,message", [
    ("no_such_pkg.nets:Net", "model.import: cannot import module 'no_such_pkg.nets'"),
    ("{dir}/missing.py:Net", "model.import: {dir}/missing.py: file not found"),
    ("{file}:Nope", "model.import: '{file}' has no attribute 'Nope'"),
    ("{file}", "model.import: expected 'package.module:Name'"),
    ("{file}:not_a_model", "returned int, not a torch.nn.Module"),
])
def test_custom_import_errors_name_the_target(module_file, target, message):
    fill = {"dir": module_file.parent, "file": module_file}
    with pytest.raises(RecipeError) as e:
        MODELS.build("custom", {"import": target.format(**fill)}, "model", info=INFO)
    assert message.format(**fill) in str(e.value)


def test_custom_wrong_args_name_model_args(module_file):
    with pytest.raises(RecipeError, match=r"model\.args: .*unexpected keyword argument 'depth'"):
        MODELS.build("custom", {"import": f"{module_file}:Net", "args": {"depth": 3}}, "model", info=INFO)


def test_custom_requires_import():
    with pytest.raises(RecipeError, match=r"model\.import: required key is missing"):
        load_recipe({"model": {"name": "custom"}})


def test_cli_exits_2_naming_a_wrong_import_path_and_writes_nothing(tmp_path):
    recipe = tmp_path / "custom.yaml"
    recipe.write_text(yaml.safe_dump({
        "data": {"source": "synthetic:linear"},
        "model": {"name": "custom", "import": "nowhere.models:MyNet"},
        "output": {"root": str(tmp_path / "runs")},
    }))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-m", "trainlab", "train", str(recipe)], check=False, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.import" in lines[0] and "nowhere.models" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()
