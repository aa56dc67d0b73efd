"""What the user sees when a run cannot go on: one line, exit 2 (1 for a bug), the run marked `failed`,
and nothing already written lost. These call the CLI's `main()` in-process (the same edge as the command)."""
from __future__ import annotations

import errno
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

import trainlab
from trainlab.cli import exit_status, main
from trainlab.errors import RecipeError
from trainlab.train.checkpoint import newest_checkpoint, verify_checkpoint


def write_recipe(tmp_path, **train) -> str:
    recipe = {
        "name": "lin", "seed": 1,
        "data": {"source": "synthetic:linear", "n": 600, "batch_size": 32},
        "model": {"name": "mlp", "widths": [16], "dropout": 0.1},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "train": {"epochs": 3, "threads": 1, "checkpoint_every": 4, **train},
        "output": {"root": str(tmp_path / "runs"), "plots": False},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_missing_run_directory(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert err_lines(capsys) == [f"trainlab: error: {tmp_path / 'nope'}: not a run directory (no recipe.yaml)"]


def test_debug_adds_the_traceback_and_keeps_the_line(tmp_path, capsys):
    assert main(["--debug", "train", "--resume", str(tmp_path / "nope")]) == 2
    lines = err_lines(capsys)
    assert lines[0].startswith("Traceback") and lines[-1].endswith("not a run directory (no recipe.yaml)")


def test_resume_takes_no_recipe(tmp_path, capsys):
    assert main(["train", write_recipe(tmp_path), "--resume", str(tmp_path)]) == 2
    assert err_lines(capsys) == ["trainlab: error: train --resume RUN_DIR continues a run with its own recipe: "
                                 "give no recipe, --set or --run-dir with it"]


def test_output_root_that_is_a_file(tmp_path, capsys):
    (tmp_path / "blocker").write_text("")
    assert main(["train", write_recipe(tmp_path), "--set", f"output.root={tmp_path / 'blocker' / 'runs'}"]) == 2
    lines = err_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"trainlab: error: Not a directory: {tmp_path / 'blocker'}/")


def test_disk_full_mid_run_fails_cleanly_and_resume_finishes_it(tmp_path, capsys, monkeypatch):
    recipe = write_recipe(tmp_path)
    reference = trainlab.train(recipe, run_dir=tmp_path / "ref", progress=False)
    capsys.readouterr()

    from trainlab.train import checkpoint as ck

    real, calls = ck._write, {"n": 0}

    def fills_up(path, data):
        calls["n"] += path.name == "model.safetensors"
        if calls["n"] == 5 and path.name == "model.safetensors":  # 5th checkpoint (steps 0, 4, 8, 12, epoch 1's end)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(ck, "_write", fills_up)
    run = tmp_path / "runs" / "full"
    assert main(["train", recipe, "--run-dir", str(run)]) == 2
    lines = err_lines(capsys)
    assert lines[-1].startswith("trainlab: error: disk full: ") and lines[-1].endswith(
        "model.safetensors; free some space (completed checkpoints are intact)")
    env = json.loads((run / "env.json").read_text())
    assert env["status"] == "failed" and "No space left on device" in env["error"]
    # nothing already written is lost: both checkpoints are complete, no temp folder is left
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last", "previous"]
    assert all(verify_checkpoint(p) is None for p in (run / "checkpoints").iterdir())

    monkeypatch.undo()  # space freed
    assert newest_checkpoint(run / "checkpoints")[0].name == "last"
    resumed = trainlab.resume(run, progress=False)
    a, b = load_file(str(resumed.path / "checkpoints/last/model.safetensors")), load_file(
        str(reference.path / "checkpoints/last/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_divergence_is_caught_and_reported(tmp_path, capsys):
    """No injection: an absurd learning rate overflows the loss; the default policy skips, rolls back, stops."""
    run = tmp_path / "runs" / "boom"
    assert main(["train", write_recipe(tmp_path), "--set", "optim.lr=1.0e8", "--run-dir", str(run)]) == 2
    lines = err_lines(capsys)
    assert lines[-1].startswith("trainlab: error: non-finite loss at step ")
    assert "stopped (train.on_nonfinite: skip, 6 steps skipped, 1 rollbacks)" in lines[-1]
    assert lines[-1].endswith("Try a lower optim.lr or train.grad_clip")
    actions = [r.get("action", "rollback") for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
               if r["split"] == "event"]
    assert actions == ["skip"] * 3 + ["rollback", "rollback"] + ["skip"] * 3 + ["stop"]
    assert json.loads((run / "env.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("error, code, line", [
    (RecipeError("optim.lr: expected a number, got 'x'"), 2, "error: optim.lr: expected a number, got 'x'"),
    (OSError(errno.ENOSPC, "No space left on device", "/r/m.safetensors"), 2,
     "error: disk full: /r/m.safetensors; free some space (completed checkpoints are intact)"),
    (PermissionError(errno.EACCES, "Permission denied", "/runs"), 2,
     "error: permission denied: /runs; choose a writable output.root or --run-dir"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), 2,
     "error: out of memory; lower data.batch_size or data.eval_batch_size, use a smaller model, "
     "or set train.device: cpu"),
    (MemoryError(), 2, "error: out of memory; lower data.batch_size or data.eval_batch_size, use a smaller model, "
                       "or set train.device: cpu"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (ValueError("boom\nsecond line"), 1, "internal error: ValueError: boom (run again with --debug for the traceback)"),
])
def test_exit_status_table(error, code, line):
    assert exit_status(error) == (code, line)
