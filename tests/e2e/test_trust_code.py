"""Issue 17: a run directory whose model is `custom` (user code) is not built, so its code does not
run, unless the user says they trust it (`--trust-code`, TRAINLAB_TRUST_CODE=1, `trust_code=True`).
Training one's own recipe is unchanged."""
from __future__ import annotations

import json
import shutil
import textwrap

import pytest
import yaml

from tests.conftest import run_cli
from trainlab import load_run
from trainlab.errors import RunDirError

# importing the module leaves a mark beside it: the test sees whether its code ran
MODULE = textwrap.dedent('''
    import pathlib
    with open(pathlib.Path(__file__).with_name("ran.txt"), "a") as f:
        f.write("ran\\n")

    from torch import nn

    class Net(nn.Module):
        def __init__(self, input_shape, output_dim):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, output_dim))

        def forward(self, x):
            return self.body(x)
''')


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory):
    """A finished run whose model is the file net.py; returns (run dir, net.py, the mark file)."""
    tmp = tmp_path_factory.mktemp("trust")
    net = tmp / "net.py"
    net.write_text(MODULE)
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "custom", "data": {"source": "synthetic:classification", "n": 240, "batch_size": 32},
        "model": {"name": "custom", "import": f"{net}:Net"},
        "train": {"epochs": 2, "device": "cpu", "threads": 1},
        "output": {"root": str(tmp / "runs"), "plots": False, "report": False},
    }))
    proc = run_cli("train", recipe, cwd=tmp)  # one's own recipe: no flag needed
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp / "runs").iterdir()
    return run, net, tmp / "ran.txt"


def without_mark(mark):
    mark.unlink(missing_ok=True)
    return mark


@pytest.mark.parametrize("command", [["evaluate"], ["report"], ["summary"], ["train", "--resume"]])
def test_commands_refuse_a_custom_model_run_without_trust_code(custom_run, command, tmp_path):
    run, net, mark = custom_run
    without_mark(mark)
    if command[0] == "train":  # an interrupted run, as someone might send one to finish
        copy = tmp_path / run.name
        shutil.copytree(run, copy)
        env = json.loads((copy / "env.json").read_text())
        (copy / "env.json").write_text(json.dumps({**env, "status": "interrupted"}))
        run = copy
    if command[0] == "report":  # report builds the model only to evaluate a run without eval/test.json
        copy = tmp_path / run.name
        shutil.copytree(run, copy)
        (copy / "eval" / "test.json").unlink()
        run = copy
    proc = run_cli(*command, run, cwd=tmp_path, env={"TRAINLAB_TRUST_CODE": ""})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("trainlab: error: ") and str(net) in lines[0] and "--trust-code" in lines[0]
    assert not mark.exists()  # the file's code never ran


def test_evaluate_runs_the_code_with_trust_code_or_the_environment_variable(custom_run, tmp_path):
    run, _, mark = custom_run
    without_mark(mark)
    proc = run_cli("evaluate", run, "--trust-code", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and mark.read_text() == "ran\n"
    without_mark(mark)
    proc = run_cli("summary", run, cwd=tmp_path, env={"TRAINLAB_TRUST_CODE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "custom on inputs (2,)" in proc.stdout and mark.exists()


def test_resume_with_trust_code_continues_the_run(custom_run, tmp_path):
    run, _, mark = custom_run
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    env = json.loads((copy / "env.json").read_text())
    (copy / "env.json").write_text(json.dumps({**env, "status": "interrupted"}))
    proc = run_cli("train", "--resume", copy, "--trust-code", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((copy / "env.json").read_text())["status"] == "finished"


def test_load_run_needs_trust_code_for_a_custom_model(custom_run, monkeypatch):
    run, net, _ = custom_run
    monkeypatch.delenv("TRAINLAB_TRUST_CODE", raising=False)
    with pytest.raises(RunDirError, match=r"would run the Python file .*net\.py.*--trust-code"):
        load_run(run)
    loaded = load_run(run, trust_code=True)
    assert type(loaded.model).__name__ == "Net"
    monkeypatch.setenv("TRAINLAB_TRUST_CODE", "1")
    assert type(load_run(run).model).__name__ == "Net"


def test_load_run_of_a_registry_model_needs_no_trust(tmp_path, monkeypatch):
    from trainlab import train

    monkeypatch.delenv("TRAINLAB_TRUST_CODE", raising=False)
    result = train({"data": {"source": "synthetic:classification", "n": 120}, "model": {"name": "mlp"},
                    "train": {"epochs": 1, "device": "cpu", "threads": 1},
                    "output": {"root": str(tmp_path), "plots": False, "report": False}}, progress=False)
    assert load_run(result.path).checkpoint in ("best", "last")
