"""Checkpoint folders: state round trip, rotation, verification, fallback, and no pickle ever."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from trainlab.errors import RunDirError
from trainlab.train.checkpoint import (
    load_checkpoint_state,
    load_model_weights,
    newest_checkpoint,
    refuse_pickle,
    rng_state,
    save_checkpoint,
    set_rng_state,
    verify_checkpoint,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "trainlab"


class FileCreatingPayload:
    """Unpickling this creates the file `target`: what a malicious model file could do."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(2):
        model(torch.randn(16, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def state_of(step: int, opt) -> dict:
    return {"optimizer": opt.state_dict(), "trainer": {"step": step, "epoch": 0, "best": None},
            "numbers": np.arange(3, dtype=np.int64), "pair": (1.5, float("inf"))}


def test_state_round_trip_is_exact(tmp_path):
    model, opt = model_and_optimizer()
    save_checkpoint(tmp_path / "last", model, state_of(7, opt))
    assert verify_checkpoint(tmp_path / "last") is None
    state = load_checkpoint_state(tmp_path / "last")
    want = opt.state_dict()
    assert state["optimizer"]["param_groups"] == want["param_groups"]  # betas stay a tuple, floats exact
    for i, s in want["state"].items():
        for k, v in s.items():
            assert torch.equal(state["optimizer"]["state"][i][k], v)
    assert state["pair"] == (1.5, float("inf")) and state["numbers"].tolist() == [0, 1, 2]
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    load_model_weights(fresh, tmp_path / "last" / "model.safetensors")
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)  # running stats and num_batches_tracked too


def test_rng_state_round_trip(tmp_path):
    model, _ = model_and_optimizer()
    torch.manual_seed(5), np.random.seed(5)
    save_checkpoint(tmp_path / "last", model, {"rng": rng_state(), "trainer": {"step": 1}})
    want = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(99), np.random.seed(99)
    set_rng_state(load_checkpoint_state(tmp_path / "last")["rng"])
    assert torch.equal(torch.rand(3), want[0]) and np.array_equal(np.random.rand(3), want[1])


def test_rotation_keeps_previous_and_fallback_skips_damaged(tmp_path):
    model, opt = model_and_optimizer()
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        save_checkpoint(root / "last", model, state_of(step, opt), previous=root / "previous")
    assert sorted(p.name for p in root.iterdir()) == ["last", "previous"]  # no temp folders left
    folder, skipped = newest_checkpoint(root)
    assert folder == root / "last" and skipped == []
    assert load_checkpoint_state(root / "previous")["trainer"]["step"] == 20

    weights = root / "last" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncate the newest
    folder, skipped = newest_checkpoint(root)
    assert folder == root / "previous"
    assert skipped[0][0].name == "last" and "model.safetensors does not match its SHA-256" in skipped[0][1]

    (root / "previous" / "manifest.json").unlink()  # as if killed before the manifest was written
    folder, skipped = newest_checkpoint(root)
    assert folder is None and "no manifest" in {f.name: r for f, r in skipped}["previous"]


def test_an_interrupted_write_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    model, opt = model_and_optimizer()
    root = tmp_path / "checkpoints"
    save_checkpoint(root / "last", model, state_of(1, opt), previous=root / "previous")

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    from trainlab.train import checkpoint

    monkeypatch.setattr(checkpoint, "_replace", disk_full)  # all files written, then the rename fails
    with pytest.raises(OSError):
        save_checkpoint(root / "last", model, state_of(2, opt), previous=root / "previous")
    monkeypatch.undo()
    assert [p.name for p in root.iterdir()] == ["last"]  # temp folder removed, nothing rotated
    assert verify_checkpoint(root / "last") is None and load_checkpoint_state(root / "last")["trainer"]["step"] == 1


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_a_pickle_is_refused_and_its_payload_never_runs(tmp_path, how):
    model, opt = model_and_optimizer()
    ckpt = tmp_path / "last"
    save_checkpoint(ckpt, model, state_of(3, opt))
    target = tmp_path / "pwned.txt"
    weights = ckpt / "model.safetensors"
    if how == "pickle":
        weights.write_bytes(pickle.dumps(FileCreatingPayload(target), protocol=4))
    else:
        torch.save({"weights": FileCreatingPayload(target)}, weights)  # zip archive with a pickle inside
    # as a plain weights file
    with pytest.raises(RunDirError, match=r"model.safetensors: is a pickle .* refuses to load pickles because "
                                          r"unpickling can execute code"):
        load_model_weights(model, weights)
    # as a checkpoint, even with a manifest that vouches for it
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"]["model.safetensors"] = __import__("hashlib").sha256(weights.read_bytes()).hexdigest()
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    assert "is a pickle" in verify_checkpoint(ckpt)
    folder, skipped = newest_checkpoint(tmp_path)
    assert folder is None and "is a pickle" in skipped[0][1]
    assert not target.exists()


def test_not_safetensors_is_refused_without_reading_it(tmp_path):
    bogus = tmp_path / "w.safetensors"
    bogus.write_text("hello")
    with pytest.raises(RunDirError, match="not a safetensors file"):
        refuse_pickle(bogus)
    with pytest.raises(RunDirError, match="missing"):
        refuse_pickle(tmp_path / "absent.safetensors")


def test_no_pickle_and_no_unsafe_torch_load_in_trainlab():
    """Whatever any module of trainlab grows into: no pickle import, torch.load only with weights_only=True."""
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*(import pickle|from pickle|import dill|import cloudpickle)", text, re.MULTILINE):
            offenders.append(f"{path.name}: imports pickle")
        for call in re.finditer(r"torch\.load\(", text):
            args = text[call.end(): text.find(")", call.end()) + 1]
            if "weights_only=True" not in args:
                offenders.append(f"{path.name}: torch.load without weights_only=True")
    assert offenders == []


def test_checkpoint_state_holds_no_pickle(tmp_path):
    model, opt = model_and_optimizer()
    save_checkpoint(tmp_path / "c", model, state_of(1, opt))
    for f in ("model.safetensors", "state.safetensors"):
        load_file(str(tmp_path / "c" / f))  # parses as safetensors
    json.loads((tmp_path / "c" / "state.json").read_text())
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "manifest.json", "model.safetensors", "state.json", "state.safetensors"]


def test_background_writer_writes_the_state_at_the_call_in_order(tmp_path, monkeypatch):
    import threading

    from trainlab.train import checkpoint
    from trainlab.train.checkpoint import CheckpointWriter

    model, opt = model_and_optimizer()
    root, writer = tmp_path / "checkpoints", CheckpointWriter()
    want = {k: v.clone() for k, v in model.state_dict().items()}
    want_momentum = {i: s["exp_avg"].clone() for i, s in opt.state_dict()["state"].items()}
    go, real = threading.Event(), checkpoint._write
    monkeypatch.setattr(checkpoint, "_write", lambda path, data: go.wait(10) and real(path, data))
    writer.save(root / "last", model, state_of(1, opt), previous=root / "previous", best=root / "best")
    with torch.no_grad():  # the next step changes weights and optimizer state in place: the write is held back
        for p in model.parameters():
            p.add_(1.0)
        for s in opt.state.values():
            s["exp_avg"].add_(1.0)
    go.set()
    writer.save(root / "last", model, state_of(2, opt), previous=root / "previous")
    writer.close()
    assert sorted(p.name for p in root.iterdir()) == ["best", "last", "previous"]
    assert all(verify_checkpoint(root / n) is None for n in ("best", "last", "previous"))
    assert [load_checkpoint_state(root / n)["trainer"]["step"] for n in ("best", "last", "previous")] == [1, 2, 1]
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    load_model_weights(fresh, root / "best" / "model.safetensors")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in want.items())
    saved = load_checkpoint_state(root / "best")["optimizer"]["state"]
    assert all(torch.equal(saved[i]["exp_avg"], v) for i, v in want_momentum.items())
    # `best` shares the files of the `last` it was saved with (now `previous`): no second write
    assert (root / "best" / "model.safetensors").stat().st_ino == (root / "previous" / "model.safetensors").stat().st_ino


def test_background_writer_reports_a_failed_write_at_wait(tmp_path, monkeypatch):
    from trainlab.train import checkpoint
    from trainlab.train.checkpoint import CheckpointWriter

    model, opt = model_and_optimizer()
    writer = CheckpointWriter()
    writer.save(tmp_path / "last", model, state_of(1, opt))
    writer.wait()

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write", disk_full)
    writer.save(tmp_path / "last", model, state_of(2, opt))
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["last"]
    assert load_checkpoint_state(tmp_path / "last")["trainer"]["step"] == 1
