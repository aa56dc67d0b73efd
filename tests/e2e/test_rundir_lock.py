"""One writer per run directory, between real `trainlab` processes: two trainings into the same
--run-dir at once (exactly one trains), and a resume of a run whose process is still training."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from trainlab.train.checkpoint import verify_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainlab", *map(str, args)], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainlab", *map(str, args)], env=_env(), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def write_recipe(tmp_path: Path, epochs: int) -> Path:
    """~30 ms an epoch on one thread: the winner holds its run for seconds, far longer than the
    difference between two process start-ups."""
    recipe = {"name": "lock", "seed": 3,
              "data": {"source": "synthetic:linear", "n": 2000, "batch_size": 32},
              "model": {"name": "mlp", "widths": [16]}, "optim": {"name": "sgd", "lr": 0.05},
              "train": {"epochs": epochs, "threads": 1},
              "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False}}
    p = tmp_path / "recipe.yaml"
    p.write_text(yaml.safe_dump(recipe))
    return p


def wait_for_training(proc: subprocess.Popen, run: Path) -> None:
    """Until the run has logged a training step: between looks at its file the test waits on the
    process itself, which returns early only if it ended (then the test fails, with its output)."""
    while not any('"split": "train"' in ln for ln in _lines(run / "metrics.jsonl")):
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"the training ended before its first step: {proc.communicate()}")


def wait_for_first_exit(procs: list[subprocess.Popen]) -> subprocess.Popen:
    """The first of `procs` to exit, waited for in the kernel (waitid without reaping, so that its
    Popen still reads the exit status); no polling, no clock."""
    pids = {p.pid: p for p in procs}
    while True:
        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        if info is not None and info.si_pid in pids:
            proc = pids[info.si_pid]
            proc.wait()
            return proc
        if info is not None:  # some other child of this test process: reap it, or waitid returns it again
            os.waitpid(info.si_pid, 0)


def _lines(p: Path) -> list[str]:
    return p.read_text().splitlines() if p.is_file() else []


def env(run: Path) -> dict:
    return json.loads((run / "env.json").read_text())


def assert_intact(run: Path) -> None:
    records = [json.loads(ln) for ln in _lines(run / "metrics.jsonl")]  # every line parses
    assert records and all(isinstance(r, dict) for r in records)
    ckpts = [p for p in (run / "checkpoints").iterdir() if not p.name.startswith(".")]
    assert ckpts and all(verify_checkpoint(p) is None for p in ckpts)


def test_two_trainings_into_the_same_run_dir_exactly_one_trains(tmp_path):
    recipe, run = write_recipe(tmp_path, epochs=400), tmp_path / "same"
    procs = [start("train", recipe, "--run-dir", run) for _ in range(2)]  # both started before either ends
    # the loser fails at the lock, long before the winner's 400 epochs end: wait for the first to exit
    loser = wait_for_first_exit(procs)
    winner = next(p for p in procs if p is not loser)
    _, err = loser.communicate()
    assert loser.returncode == 2, err
    assert err.strip().splitlines()[-1].startswith(f"trainlab: error: {run}: in use by pid {winner.pid} on ")
    assert winner.poll() is None, "the winner must still be training when the loser has gone"
    assert env(run)["pid"] == winner.pid and env(run)["status"] == "running"

    wait_for_training(winner, run)
    winner.send_signal(signal.SIGTERM)  # interrupted, checkpointed: then resumed to the end
    _, err = winner.communicate(timeout=120)
    assert winner.returncode == 143, err
    assert env(run)["status"] == "interrupted" and env(run)["pid"] == winner.pid
    assert_intact(run)

    r = cli("train", "--resume", run)
    assert r.returncode == 0, r.stderr
    e = env(run)
    assert e["status"] == "finished" and e["epochs_run"] == 400 and len(e["resumes"]) == 1
    assert_intact(run)
    assert (run / ".lock").read_text() == ""  # released by every process that held it


def test_resume_of_a_run_still_training_is_refused_and_leaves_it_to_its_writer(tmp_path, capsys):
    from trainlab.cli import main  # in this process: refused at once, while the other one trains

    recipe, run = write_recipe(tmp_path, epochs=5000), tmp_path / "live"  # stopped by SIGINT below
    proc = start("train", recipe, "--run-dir", run)
    wait_for_training(proc, run)
    for args in (["train", "--resume", str(run)], ["evaluate", str(run), "--checkpoint", "last"],
                 ["report", str(run)]):
        assert main(args) == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith(f"trainlab: error: {run}: in use by pid {proc.pid} on "), line
        assert proc.poll() is None and env(run)["status"] == "running" and env(run)["pid"] == proc.pid
    assert not (run / "eval").exists() and not (run / "report.html").exists()  # the refused ones wrote nothing
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert env(run)["status"] == "interrupted"  # the refused resume never marked it finished
    assert_intact(run)
