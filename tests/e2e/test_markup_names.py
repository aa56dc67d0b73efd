"""Issue 17: names that come from the user (class labels, column names, run folders) are printed as
written, never read as rich markup: `[/x]` used to end `evaluate`, `data` and `train` with exit 1
(MarkupError), and `[link=...]` became a terminal hyperlink (OSC 8)."""
from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import run_cli

CLOSE = "[/x]"
LINK = "[link=https://evil.example]x[/link]"
CLASSES = [CLOSE, LINK, "[bold]c"]
COLUMNS = [CLOSE, "[link=https://evil.example]f[/link]"]
RUN = "[link=http:evil.example]run[red]"  # a folder name cannot hold a "/", a link target can do without
OSC8 = "\x1b]8;"  # the start of a terminal hyperlink
WIDE = {"COLUMNS": "250"}  # tables not squeezed (a wrapped cell would split a name)
TERMINAL = {**WIDE, "FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"}
PLAIN = {**WIDE, "FORCE_COLOR": "", "TTY_COMPATIBLE": "0"}


def visible(out: str) -> str:
    """What a terminal shows: colour and style codes (SGR) removed."""
    return re.sub(r"\x1b\[[0-9;]*m", "", out)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A CSV whose class labels and column names are markup, its recipe, and a trained run in a
    folder whose name is markup; returns (folder, recipe, run dir, train's output)."""
    tmp = tmp_path_factory.mktemp("markup")
    rows = [f'{i % 7 * 0.5},{i % 5 - 2},"{CLASSES[i % 3]}"' for i in range(90)]
    (tmp / "table.csv").write_text(",".join(f'"{c}"' for c in [*COLUMNS, "label"]) + "\n" + "\n".join(rows) + "\n")
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "[/x]", "data": {"source": "csv", "path": str(tmp / "table.csv"), "target": "label",
                                 "batch_size": 16, "preprocess": [{"normalize": "standard"}]},
        "model": {"name": "mlp", "widths": [8]}, "train": {"epochs": 1, "device": "cpu", "threads": 1},
        "output": {"root": str(tmp / "runs"), "plots": False},
    }))
    run = tmp / "runs" / RUN
    proc = run_cli("train", recipe, "--run-dir", run, cwd=tmp, env=PLAIN)
    assert proc.returncode == 0, proc.stderr
    return tmp, recipe, run, proc


def test_train_prints_a_run_folder_named_in_markup_as_written(lab):
    _, _, run, proc = lab
    assert f"run directory: {run}" in proc.stdout


def test_train_on_a_terminal_makes_no_hyperlink(lab, tmp_path):
    folder, recipe, _, _ = lab
    run = tmp_path / RUN
    proc = run_cli("train", recipe, "--run-dir", run, cwd=folder, env=TERMINAL)
    assert proc.returncode == 0, proc.stderr
    assert OSC8 not in proc.stdout + proc.stderr
    assert f"run directory: {run}" in visible(proc.stdout)


@pytest.mark.parametrize("env", [PLAIN, TERMINAL], ids=["pipe", "terminal"])
def test_evaluate_shows_class_names_in_markup_as_written(lab, env):
    folder, _, run, _ = lab
    proc = run_cli("evaluate", run, cwd=folder, env=env)
    assert proc.returncode == 0, proc.stderr
    out = visible(proc.stdout)
    assert all(c in out for c in CLASSES), out
    assert f"wrote {run}/eval/test.json" in out
    assert OSC8 not in proc.stdout


@pytest.mark.parametrize("env", [PLAIN, TERMINAL], ids=["pipe", "terminal"])
def test_data_shows_class_and_column_names_in_markup_as_written(lab, env):
    folder, recipe, _, _ = lab
    proc = run_cli("data", recipe, cwd=folder, env=env)
    assert proc.returncode == 0, proc.stderr
    out = visible(proc.stdout)
    assert all(c in out for c in CLASSES + COLUMNS), out
    assert OSC8 not in proc.stdout


@pytest.mark.parametrize("env", [PLAIN, TERMINAL], ids=["pipe", "terminal"])
def test_runs_shows_a_run_named_in_markup_as_written(lab, env):
    folder, _, run, _ = lab
    proc = run_cli("runs", run.parent, cwd=folder, env=env)
    assert proc.returncode == 0, proc.stderr
    out = visible(proc.stdout)
    assert RUN in out, out
    assert OSC8 not in proc.stdout
    proc = run_cli("runs", "--compare", run, run, "--plot", folder / "c.png", cwd=folder, env=env)
    assert proc.returncode == 0, proc.stderr
    assert str(run) in visible(proc.stdout) and OSC8 not in proc.stdout


def test_cli_error_line_shows_markup_as_written_and_no_control_codes(lab):
    folder, recipe, _, _ = lab
    proc = run_cli("evaluate", folder / "[/x]\x1b]8;;https://evil.example\x1b\\x", cwd=folder, env=TERMINAL)
    assert proc.returncode == 2
    assert "[/x]" in proc.stderr and "\x1b" not in proc.stderr
