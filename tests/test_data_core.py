import gzip
import struct

import pytest
import torch

from trainlab.data import TensorLoader, build_data
from trainlab.data.bundle import Split
from trainlab.data.idx import read_idx
from trainlab.data.splits import split_indices
from trainlab.errors import DataError
from trainlab.recipe import load_recipe


def write_idx(path, arr: torch.Tensor, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    raw = header + arr.to(torch.uint8).numpy().tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, gz):
    a = torch.randint(0, 256, (5, 3, 4), dtype=torch.uint8)
    p = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), a, gz)
    assert torch.equal(read_idx(p), a)


def test_truncated_idx_names_file(tmp_path):
    p = write_idx(tmp_path / "t.idx", torch.zeros(4, 2, 2))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(DataError, match=r"t\.idx: truncated"):
        read_idx(p)


def test_stratified_split_keeps_class_shares():
    y = torch.arange(10).repeat_interleave(100)
    keep, held = split_indices(y, 0.1, seed=3, stratify=True)
    assert len(held) == 100 and len(keep) == 900
    assert torch.bincount(y[held]).tolist() == [10] * 10
    assert set(keep.tolist()).isdisjoint(held.tolist())
    k2, h2 = split_indices(y, 0.1, seed=3, stratify=True)
    assert torch.equal(h2, held)


def test_loader_covers_every_sample_once_and_is_seeded():
    s = Split(torch.arange(10).float().unsqueeze(1), torch.arange(10))
    a = [yb.tolist() for _, yb in TensorLoader(s, 4, seed=1)]
    assert [len(b) for b in a] == [4, 4, 2]
    assert sorted(sum(a, [])) == list(range(10))
    assert a == [yb.tolist() for _, yb in TensorLoader(s, 4, seed=1)]
    assert a != [yb.tolist() for _, yb in TensorLoader(s, 4, seed=2)]


def test_loader_resumes_mid_epoch():
    s = Split(torch.arange(20).float().unsqueeze(1), torch.arange(20))
    full = TensorLoader(s, 3, seed=0)
    batches = [yb for _ in range(2) for _, yb in full]
    part = TensorLoader(s, 3, seed=0)
    it = iter(part)
    first = [next(it)[1] for _ in range(4)]
    state = part.state_dict()
    resumed = TensorLoader(s, 3, seed=0)
    resumed.load_state_dict(state)
    rest = [yb for _, yb in resumed] + [yb for _, yb in resumed]
    assert all(torch.equal(a, b) for a, b in zip(first + rest, batches))


def test_synthetic_linear_bundle_splits_and_normalizes():
    r = load_recipe({"data": {"source": "synthetic:linear", "n": 1000, "preprocess": [{"normalize": "standard"}]},
                     "model": {"name": "linear"}})
    b = build_data(r.data, r.seed)
    assert b.info.task == "regression" and b.info.input_shape == (1,)
    assert (len(b.train), len(b.val), len(b.test)) == (720, 80, 200)
    assert abs(float(b.train.x.mean())) < 1e-5 and abs(float(b.train.x.std()) - 1) < 1e-4
