import pickle

import pytest
import torch
from torch import nn

from trainlab.errors import RunDirError
from trainlab.train.checkpoint import (load_checkpoint_state, load_model_weights, save_checkpoint,
                                       verify_checkpoint)


def test_checkpoint_roundtrip_restores_weights_and_optimizer(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m(torch.randn(8, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "ck", m, {"optimizer": opt.state_dict(), "epoch": 3, "t": (1, 2.5)})
    assert verify_checkpoint(tmp_path / "ck") is None
    m2 = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    load_model_weights(m2, tmp_path / "ck" / "model.safetensors")
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    state = load_checkpoint_state(tmp_path / "ck")
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    opt2.load_state_dict(state["optimizer"])
    assert state["epoch"] == 3 and state["t"] == (1, 2.5)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_corrupted_file_fails_verification(tmp_path):
    m = nn.Linear(2, 2)
    save_checkpoint(tmp_path / "ck", m, {})
    f = tmp_path / "ck" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-4])
    assert "does not match" in verify_checkpoint(tmp_path / "ck")


def test_pickle_is_refused(tmp_path):
    p = tmp_path / "model.safetensors"
    p.write_bytes(pickle.dumps({"w": [1, 2]}, protocol=4))
    with pytest.raises(RunDirError, match="refuses to load pickles"):
        load_model_weights(nn.Linear(2, 2), p)
