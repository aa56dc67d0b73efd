"""Stopping `trainlab tune` half-way (kill -9, Ctrl-C) and re-running the same command finishes the study."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

SRC = Path(__file__).resolve().parents[2] / "src"
# trials of a few seconds, so the process can be stopped while one runs
RECIPE = {
    "name": "lin", "seed": 0,
    "data": {"source": "synthetic:linear", "n": 30000, "batch_size": 32},
    "model": {"name": "linear"}, "loss": {"name": "mse"},
    "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "train": {"epochs": 2},
    "output": {"plots": False},
    "search": {"optim.lr": {"loguniform": [0.005, 0.2]}},
}
TRIALS = 3


def command(tmp_path):
    p = tmp_path / "lin.yaml"
    p.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    return [sys.executable, "-m", "trainlab", "tune", str(p), "--trials", str(TRIALS), "--heartbeat", "1",
            "--sampler", "random", "--pruner", "none"]


def start(cmd, cwd):
    return subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def rerun(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True,
                          text=True, timeout=600, check=False)


def states(db: Path) -> list[str]:
    """Trial states; a RUNNING trial whose run has started (its run directory has env.json) reads TRAINING."""
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(db, timeout=30) as c:
            rows = c.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    started = {n for n, _ in rows if (db.parent / "trials" / f"{n:04d}" / "env.json").is_file()}
    return ["TRAINING" if state == "RUNNING" and n in started else state for n, state in rows]


def wait_until_one_finished_and_one_running(db: Path, proc, timeout=300):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s = states(db)
        if "COMPLETE" in s and "TRAINING" in s:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError(f"no running trial after a finished one within {timeout}s: {states(db)}")


def load(db: Path) -> optuna.Study:
    return optuna.load_study(study_name="lin", storage=f"sqlite:///{db}")


@pytest.mark.slow
def test_killed_tune_is_finished_by_running_the_same_command_again(tmp_path):
    cmd = command(tmp_path)
    db = tmp_path / "runs" / "tune" / "lin" / "study.db"
    proc = start(cmd, tmp_path)
    wait_until_one_finished_and_one_running(db, proc)
    proc.kill()
    proc.communicate()
    before = load(db).trials
    orphans = [t.number for t in before if t.state == TrialState.RUNNING]  # left RUNNING by the dead process
    assert len(orphans) == 1  # killed while training (trials last seconds; the kill follows within ms)
    done_before = sum(t.state == TrialState.COMPLETE for t in before)
    assert 1 <= done_before < TRIALS

    r = rerun(cmd, tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"continuing study 'lin': {done_before} of {TRIALS} trials finished" in r.stdout
    trials = load(db).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == TRIALS
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for n in orphans:  # the killed trial is failed by its missing heartbeat and re-run with its parameters
        assert trials[n].state == TrialState.FAIL
        retry = [t for t in trials if t.system_attrs.get("failed_trial") == n]
        assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == trials[n].params
    assert len(trials) == TRIALS + len(orphans)


@pytest.mark.slow
def test_ctrl_c_keeps_finished_trials_and_the_rerun_trains_the_interrupted_one(tmp_path):
    cmd = command(tmp_path)
    folder = tmp_path / "runs" / "tune" / "lin"
    proc = start(cmd, tmp_path)
    wait_until_one_finished_and_one_running(folder / "study.db", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "finished trials kept; run the same command again to continue" in out
    assert (folder / "trials.csv").is_file()  # outputs are written for what finished
    trials = load(folder / "study.db").trials
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stopped) == 1 and stopped[0].user_attrs["error"] == "interrupted (Ctrl-C)"
    queued = [t for t in trials if t.state == TrialState.WAITING]
    assert len(queued) == 1 and queued[0].system_attrs["failed_trial"] == stopped[0].number

    r = rerun(cmd, tmp_path)
    assert r.returncode == 0, r.stderr
    trials = load(folder / "study.db").trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == TRIALS
    assert trials[queued[0].number].state == TrialState.COMPLETE
    assert trials[queued[0].number].params == stopped[0].params
