"""Faults from outside, through the CLI as a user meets them: SIGKILL, SIGTERM/SIGINT, a damaged checkpoint,
a pickle in place of the weights. Each resumed run must end bitwise equal to the uninterrupted one."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
FMNIST = Path("/usr/share/datasets/fashion-mnist")
TIMINGS = ("time", "samples_per_s", "mfu", "peak_flops")  # measured, not computed
CHECKPOINT_EVERY = 5

pytestmark = pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").exists(),
                                reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


# --- running the CLI ----------------------------------------------------------------------------
def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainlab", *map(str, args)], env=_env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainlab", *map(str, args)], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def logged_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a line being written
        if r.get("split") == "train":
            steps.append(r["step"])
    return steps


def signal_at(proc: subprocess.Popen, run: Path, step: int, sig: int, timeout: float = 240) -> tuple[int, str]:
    """Watch metrics.jsonl; once a training step >= `step` is logged, send `sig`. Returns (last step, stderr)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "training never reached the step"
        if max(logged_steps(run), default=-1) >= step:
            proc.send_signal(sig)
            break
        time.sleep(0.003)  # polling the file, not waiting for a result
    _, err = proc.communicate(timeout=timeout)
    return max(logged_steps(run), default=0), err


# --- the recipe and what a run left ---------------------------------------------------------------
def write_recipe(tmp_path: Path) -> Path:
    """1000 Fashion-MNIST images, 32 steps an epoch, 4 epochs; dropout, so the RNG must be restored."""
    recipe = {
        "name": "crash", "seed": 5,
        "data": {"source": "fashion_mnist", "subset": 1000, "val_fraction": 0.05, "batch_size": 32,
                 "preprocess": [{"normalize": "standard"}]},
        "model": {"name": "mlp", "widths": [64], "dropout": 0.3},
        "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4},
        "schedule": {"name": "one_cycle"},
        "train": {"epochs": 4, "threads": 1, "log_every": 1, "checkpoint_every": CHECKPOINT_EVERY,
                  "deterministic": True},
        "early_stopping": {"monitor": "val.accuracy", "patience": 5},
        "output": {"root": str(tmp_path / "runs"), "plots": False},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def weights(run: Path, which: str = "last") -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / which / "model.safetensors"))


def assert_same_run(run: Path, ref: Path) -> None:
    """Bitwise equal weights, the same metrics.jsonl (timings aside), the same test metrics."""
    for which in ("last", "best"):
        a, b = weights(run, which), weights(ref, which)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{which} weights differ"
    def records(p):
        return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS}
                for line in (p / "metrics.jsonl").read_text().splitlines()]
    assert records(run) == records(ref)
    test = [json.loads((p / "eval" / "test.json").read_text()) for p in (run, ref)]
    assert test[0]["accuracy"] == test[1]["accuracy"] and test[0]["loss"] == test[1]["loss"]


def env(run: Path) -> dict:
    return json.loads((run / "env.json").read_text())


def step_of(folder: Path) -> int:
    from trainlab.train.checkpoint import checkpoint_step

    return checkpoint_step(folder)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("reference")
    recipe = write_recipe(tmp)
    r = cli("train", recipe, "--run-dir", tmp / "ref")
    assert r.returncode == 0, r.stderr
    return recipe, tmp / "ref"


# --- the tests -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_at_three_random_steps_then_resume_is_bitwise_equal(reference, tmp_path):
    recipe, ref = reference
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    run = tmp_path / "run"
    proc = start("train", recipe, "--run-dir", run)
    target, killed = rng.randint(8, 30), []
    for _ in range(3):
        last, err = signal_at(proc, run, target, signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL, f"seed {seed}: not killed mid-run: {err[-500:]}"
        killed.append(last)
        proc = start("train", "--resume", run)
        target = last + rng.randint(10, 25)  # beyond what the killed process logged
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"seed {seed}: {err}"
    resumes = env(run)["resumes"]
    assert len(resumes) == 3 and len(set(killed)) == 3
    for used, k in zip(resumes, killed):
        # the newest complete checkpoint at or before the kill: at most two checkpoint intervals lost
        assert k - 2 * CHECKPOINT_EVERY <= used["step"] <= k, f"seed {seed}: killed at {k}, resumed {used}"
    assert_same_run(run, ref)
    assert env(run)["status"] == "finished"


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(reference, tmp_path):
    recipe, ref = reference
    run = tmp_path / "run"
    proc = start("train", recipe, "--run-dir", run)
    signal_at(proc, run, 47, signal.SIGKILL)
    last, previous = run / "checkpoints" / "last", run / "checkpoints" / "previous"
    fallback = step_of(previous)
    assert fallback < step_of(last)
    damaged = last / "model.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:1000])  # torn, as by a crash of the disk
    r = cli("train", "--resume", run)
    assert r.returncode == 0, r.stderr
    assert ("trainlab: warning: skipped checkpoint last: model.safetensors does not match its SHA-256 in the "
            "manifest (damaged or truncated)") in r.stderr
    assert f"trainlab: resuming from checkpoints/previous: step {fallback}," in r.stderr
    assert env(run)["resumes"][0] == {**env(run)["resumes"][0], "checkpoint": "previous", "step": fallback}
    assert_same_run(run, ref)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_checkpoint_mark_interrupted_and_resume_exactly(reference, tmp_path, sig, code):
    recipe, ref = reference
    run = tmp_path / "run"
    proc = start("train", recipe, "--run-dir", run)
    last, err = signal_at(proc, run, 23, sig)
    assert proc.returncode == code, err
    name = signal.Signals(sig).name
    e = env(run)
    assert e["status"] == "interrupted" and e["signal"] == name
    stopped = e["step"]
    assert step_of(run / "checkpoints" / "last") == stopped == last  # the step it was in, finished and kept
    assert err.strip().splitlines()[-1] == (f"trainlab: interrupted by {name} at step {stopped}; checkpoint written "
                                            f"at step {stopped}; resume with: trainlab train --resume {run}")
    if sig == signal.SIGTERM:  # resuming after SIGINT is the same path
        r = cli("train", "--resume", run)
        assert r.returncode == 0, r.stderr
        assert env(run)["resumes"][0]["step"] == stopped
        assert_same_run(run, ref)


class FileCreatingPayload:
    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))  # unpickling creates the file


def test_a_pickle_offered_as_weights_is_refused_and_never_runs(reference, tmp_path):
    _, ref = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    target = tmp_path / "payload-ran.txt"
    payload = pickle.dumps(FileCreatingPayload(target), protocol=4)
    for folder in (run / "checkpoints").iterdir():
        (folder / "model.safetensors").write_bytes(payload)
        manifest = json.loads((folder / "manifest.json").read_text())  # even vouched for by the manifest
        manifest["files"]["model.safetensors"] = hashlib.sha256(payload).hexdigest()
        (folder / "manifest.json").write_text(json.dumps(manifest))

    r = cli("evaluate", run, "--checkpoint", "last")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"trainlab: error: {run}/checkpoints/last/model.safetensors: is a pickle (torch.save) file; trainlab "
        "refuses to load pickles because unpickling can execute code. Convert the weights to safetensors first."]

    (run / "env.json").write_text(json.dumps({**env(run), "status": "interrupted"}))
    r = cli("train", "--resume", run)
    assert r.returncode == 2
    assert "no complete checkpoint to resume from" in r.stderr.splitlines()[-1]
    assert "last: model.safetensors is a pickle" in r.stderr
    assert not target.exists()
