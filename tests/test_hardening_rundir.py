"""Issue 17, the run directory: one writer per run, safe folder names, no writes through symbolic
links, a run failed before its first epoch marked so, damaged runs listed. These call the CLI's
`main()` in-process; a lock held by another process is held by a small real subprocess."""
from __future__ import annotations

import errno
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import trainlab
import trainlab.api
from trainlab.cli import main
from trainlab.errors import RunDirError
from trainlab.track import lock
from trainlab.track.rundir import RunDir, process_start, safe_name
from trainlab.train.checkpoint import newest_checkpoint, save_checkpoint, verify_checkpoint


def write_recipe(tmp_path: Path, **top) -> str:
    recipe = {
        "name": "lin", "seed": 1,
        "data": {"source": "synthetic:linear", "n": 300, "batch_size": 32},
        "model": {"name": "mlp", "widths": [8]},
        "optim": {"name": "sgd", "lr": 0.05},
        "train": {"epochs": 2, "threads": 1},
        "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False},
        **top,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One finished tiny run; tests copy it (shutil.copytree keeps hard links as copies)."""
    tmp = tmp_path_factory.mktemp("trained")
    return trainlab.train(write_recipe(tmp), run_dir=tmp / "run", progress=False).path


@pytest.fixture
def run(trained, tmp_path) -> Path:
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


def env(run: Path) -> dict:
    return json.loads((run / "env.json").read_text())


def err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid  # gone (its number is not reused this soon)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != lock.LOCK}


class Holder:
    """Another process holding a run's lock the way trainlab does (flock on .lock, its record inside)."""

    CODE = ("import fcntl, json, os, platform, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
            "os.write(fd, json.dumps({'pid': os.getpid(), 'host': platform.node(), 'since': 'then'}).encode())\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n")

    def __init__(self, run: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE, str(run / lock.LOCK)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline() == "locked\n"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.communicate("")  # end of stdin: it exits, the kernel drops the lock


# --- 1, 2: one writer per run --------------------------------------------------------------------
@pytest.mark.parametrize("command", [["train", "--resume"], ["evaluate"], ["report"], ["lr-find", "RECIPE", "--run-dir"],
                                     ["export", "--format", "onnx"]])
def test_a_run_held_by_another_process_is_refused_naming_the_holder(run, tmp_path, capsys, command):
    env_before = (run / "env.json").read_bytes()
    (run / "env.json").write_text(json.dumps({**env(run), "status": "interrupted"}))  # resumable
    args = [str(a) if a != "RECIPE" else write_recipe(tmp_path) for a in command]
    with Holder(run) as h:
        assert main([*args, str(run)]) == 2
        line = err_lines(capsys)[-1]
    assert line.startswith(f"trainlab: error: {run}: in use by pid {h.proc.pid} on {platform.node()} since then (")
    assert env(run)["status"] == "interrupted" and env(run)["pid"] == json.loads(env_before)["pid"]
    assert not (run / "lr_find.json").exists() and not (run / "export").exists()


def test_resume_refuses_a_run_whose_recorded_process_is_alive(run, capsys):
    """A writer that took no lock (a trainlab from before locks): env.json says running and its process lives."""
    alive = os.getppid()
    (run / "env.json").write_text(json.dumps({**env(run), "status": "running", "pid": alive,
                                              "pid_start": process_start(alive), "host": platform.node()}))
    assert main(["train", "--resume", str(run)]) == 2
    assert err_lines(capsys)[-1].startswith(f"trainlab: error: {run}: in use by pid {alive} on {platform.node()}")
    assert env(run)["status"] == "running" and env(run)["pid"] == alive  # not taken over, not marked finished


def test_checkpoint_temp_folders_of_a_live_writer_are_kept_those_of_a_dead_one_removed(tmp_path):
    import torch

    ckpts = tmp_path / "checkpoints"
    live = ckpts / f".last.tmp-{os.getppid()}-abc"
    dead = ckpts / f".last.tmp-{dead_pid()}-abc"
    old = ckpts / ".last.tmp-x1y2z3"  # a name from before pids: left behind by definition
    for d in (live, dead, old):
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"half written")
    save_checkpoint(ckpts / "last", torch.nn.Linear(2, 1), {"step": 1})
    assert live.is_dir() and (live / "model.safetensors").read_bytes() == b"half written"
    assert not dead.exists() and not old.exists()
    assert verify_checkpoint(ckpts / "last") is None


def test_the_lock_is_reentrant_in_one_process_and_released_on_every_exit(run, tmp_path):
    (run / "eval" / "test.json").unlink()  # report() then calls evaluate(), which takes the lock again
    assert trainlab.api.report(run).is_file() and not lock.held(run)
    with RunDir(run).lock():
        with RunDir(run).lock():
            assert lock.held(run)
        assert lock.held(run)
    assert not lock.held(run) and (run / lock.LOCK).read_text() == ""  # released: emptied, not deleted
    with pytest.raises(RunDirError, match="not valid"), RunDir(run).lock():
        raise RunDirError("not valid")
    assert not lock.held(run)
    with Holder(run):  # another process can take it now: nothing of ours is left held
        pass


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_note(run, capsys):
    pid = dead_pid()
    (run / lock.LOCK).write_text(json.dumps({"pid": pid, "host": platform.node(), "since": "2024-01-01T00:00:00"}))
    assert main(["evaluate", str(run)]) == 0
    notes = [ln for ln in err_lines(capsys) if "note" in ln]
    assert notes == [f"trainlab: note: {run}: taking over the lock left by pid {pid} on {platform.node()} "
                     "since 2024-01-01T00:00:00 (that process no longer holds it)"]
    assert (run / lock.LOCK).read_text() == "" and json.loads((run / "eval" / "test.json").read_text())["split"] == "test"


def test_run_dir_that_holds_only_a_released_lock_file_counts_as_empty(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / lock.LOCK).write_text("")
    with RunDir.create(tmp_path, "x", tmp_path / "r") as rd:
        assert lock.held(rd.path)
    (rd.path / "recipe.yaml").write_text("name: x\n")
    with pytest.raises(RunDirError, match="folder exists and is not empty"):
        RunDir.create(tmp_path, "x", tmp_path / "r")
    assert not lock.held(rd.path)


# --- 3: names and paths ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, safe", [
    ("../../escaped", "escaped"), ("a/b", "a_b"), ("..", "run"), ("", "run"), ("/etc/passwd", "etc_passwd"),
    ("ok-name_1.2", "ok-name_1.2"), ("x..y", "x.y"), ("-rf", "rf"), (".hidden", "hidden"), ("é ü", "run"), ("a é", "a_"),
    ("a" * 300, "a" * 100)])
def test_safe_name(name, safe):
    assert safe_name(name) == safe


def test_a_name_with_dots_and_slashes_cannot_put_the_run_outside_output_root(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    assert main(["train", recipe, "--set", "name=../../escaped"], ) == 0
    made = list((tmp_path / "runs").iterdir())
    assert len(made) == 1 and made[0].name.startswith("escaped-") and (made[0] / "recipe.yaml").is_file()
    assert not list(tmp_path.glob("escaped*")) and not list(tmp_path.parent.glob("escaped*"))
    err = capsys.readouterr().err
    assert "trainlab: note: name '../../escaped' is not a safe folder name; the run folder is named 'escaped'" in err
    assert yaml.safe_load((made[0] / "recipe.yaml").read_text())["name"] == "../../escaped"  # the recipe as given


def test_a_tune_study_name_is_made_a_safe_folder_name():
    from trainlab.tune.runner import _study_name

    assert _study_name("../../up") == "up" and _study_name("grid-1") == "grid-1"


# --- 4: nothing written through a symbolic link -------------------------------------------------
@pytest.mark.parametrize("name", ["metrics.jsonl", "eval", "plots", "checkpoints", "data", "env.json",
                                  "eval/test.json"])
def test_a_run_file_that_is_a_symbolic_link_is_refused_and_its_target_unchanged(run, tmp_path, capsys, name):
    import shutil

    outside = tmp_path / "outside" / Path(name).name
    outside.parent.mkdir()
    if not (run / name).exists():  # plots/: this recipe draws none
        (run / name).mkdir()
    (shutil.copytree if (run / name).is_dir() else shutil.copy2)(run / name, outside)
    if (run / name).is_dir():
        shutil.rmtree(run / name)
    else:
        (run / name).unlink()
    (run / name).symlink_to(outside)
    before = tree(tmp_path / "outside")
    for args in (["evaluate", str(run)], ["report", str(run)]):
        assert main(args) == 2
        assert err_lines(capsys)[-1] == (f"trainlab: error: {run / name}: is a symbolic link (to {outside}); a "
                                         "run's files must be inside the run directory, so nothing is written through it")
    assert main(["train", "--resume", str(run)]) == 2
    assert f"{run / name}: is a symbolic link" in err_lines(capsys)[-1]
    assert tree(tmp_path / "outside") == before and not lock.held(run)


def test_run_dir_writers_refuse_links_themselves(tmp_path):
    """Without the lock's check (a Trainer given a RunDir in Python): each writer checks its own path."""
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    target = tmp_path / "outside"
    target.mkdir()
    (target / "metrics.jsonl").write_text('{"split": "train"}\n')
    (rd.path / "metrics.jsonl").symlink_to(target / "metrics.jsonl")
    (rd.path / "plots").symlink_to(target)
    (rd.path / "eval").symlink_to(target)
    for write in (lambda: rd.log({"split": "train"}), lambda: rd.plot("curves.png"),
                  lambda: rd.write_json("eval/test.json", {}), lambda: rd.truncate_metrics(0)):
        with pytest.raises(RunDirError, match="is a symbolic link"):
            write()
    assert sorted(p.name for p in target.iterdir()) == ["metrics.jsonl"]
    assert (target / "metrics.jsonl").read_text() == '{"split": "train"}\n'


# --- 5: a failure before the first epoch ---------------------------------------------------------
def test_disk_full_before_the_first_epoch_marks_the_run_failed(tmp_path, capsys, monkeypatch):
    import trainlab.data

    def full(rd, bundle):
        raise OSError(errno.ENOSPC, "No space left on device", str(rd.path / "data" / "split_indices.safetensors"))

    monkeypatch.setattr(trainlab.data, "save_data_state", full)
    run = tmp_path / "runs" / "full"
    assert main(["train", write_recipe(tmp_path), "--run-dir", str(run)]) == 2
    assert err_lines(capsys)[-1].startswith("trainlab: error: disk full: ")
    e = env(run)
    assert e["status"] == "failed" and e["error"].startswith("OSError: [Errno 28] No space left on device")
    assert e["step"] == 0 and "end" in e and not lock.held(run) and (run / lock.LOCK).read_text() == ""


# --- 6: a damaged run in `trainlab runs` ----------------------------------------------------------
@pytest.mark.parametrize("file, text, reason", [
    ("recipe.yaml", "model: [unclosed\n", "recipe.yaml: "),
    ("recipe.yaml", "- a list\n", "recipe.yaml: not a mapping"),
    ("recipe.yaml", "optim: 3\n", "AttributeError: "),
    ("env.json", "{not json", "env.json: "),
    ("env.json", '"start"', "env.json: not a JSON object"),
    ("metrics.jsonl", b"\xff\xfe\x00garbage", "metrics.jsonl: "),
    ("metrics.jsonl", "3\n[1]\n", "metrics.jsonl: lines that are not records"),
    ("eval/test.json", "[]", "eval/test.json: not a JSON object"),
])
def test_runs_lists_a_damaged_run_and_goes_on(run, trained, tmp_path, capsys, file, text, reason):
    import shutil

    root = tmp_path / "all"
    root.mkdir()
    run.rename(root / "broken")
    shutil.copytree(trained, root / "good")
    target = root / "broken" / file
    target.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["runs", str(root), "--json"]) == 0
    rows = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["good"]["status"] == "finished" and rows["good"]["damaged"] is None
    assert rows["broken"]["status"] == "damaged" and reason in rows["broken"]["damaged"]
    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert "good" in out and f"damaged: broken: {rows['broken']['damaged']}" in " ".join(out.split())


def test_newest_checkpoint_untouched_by_refusals(run, capsys):
    """A refused resume changes nothing in the run it refused."""
    (run / "env.json").write_text(json.dumps({**env(run), "status": "interrupted"}))
    before = tree(run)
    with Holder(run):
        assert main(["train", "--resume", str(run)]) == 2
    capsys.readouterr()
    after = tree(run)
    assert after == before and newest_checkpoint(run / "checkpoints")[0].name == "last"
