"""The decoded-data cache (trainlab.data.cache): cached loads are bitwise the uncached decode,
a changed source or a damaged cache file is rebuilt, concurrent builders both succeed, a folder
that cannot be written falls back to decoding, and `cache: false` writes nothing."""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, needs_fmnist
from trainlab.data import build_data, cache, cifar, vision
from trainlab.data.idx import decode_idx, read_idx
from trainlab.recipe import load_recipe


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "decoded"
    monkeypatch.setenv("TRAINLAB_CACHE", str(d))
    monkeypatch.delenv("TRAINLAB_DATA_CACHE", raising=False)
    monkeypatch.setattr(cache, "_told_unwritable", False)
    return d


def write_idx(path: Path, arr: torch.Tensor, code: int = 0x08, dtype: str = "u1") -> Path:
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    raw = header + arr.numpy().astype(f">{dtype}").tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def entries(d: Path) -> list[Path]:
    return sorted(d.glob("*.safetensors")) if d.is_dir() else []


def test_cached_idx_is_bitwise_the_decode(tmp_path, cache_dir):
    cases = [(torch.randint(0, 256, (7, 5, 3), dtype=torch.uint8), 0x08, "u1"),
             (torch.randint(-1000, 1000, (11,), dtype=torch.int32), 0x0C, "i4"),
             (torch.randn(4, 6, dtype=torch.float64), 0x0E, "f8"),
             (torch.zeros(0, 28, 28, dtype=torch.uint8), 0x08, "u1")]
    for i, (a, code, dt) in enumerate(cases):
        p = write_idx(tmp_path / f"a{i}.idx.gz", a, code, dt)
        first, again = read_idx(p), read_idx(p)  # decoded and stored, then from the cache
        for t in (first, again):
            assert t.dtype == a.dtype and t.shape == a.shape and torch.equal(t, a)
            assert torch.equal(t, decode_idx(p))
    assert len(entries(cache_dir)) == len(cases)


def test_second_load_is_memory_mapped(tmp_path, cache_dir):
    p = write_idx(tmp_path / "x.idx", torch.randint(0, 256, (20, 4), dtype=torch.uint8))
    read_idx(p)
    t = read_idx(p)
    maps = Path("/proc/self/maps")
    if maps.exists():  # Linux: the entry is mapped into this process, not read into a copy
        assert str(entries(cache_dir)[0]) in maps.read_text()
    t[0, 0] += 1  # copy-on-write: the file keeps what was decoded
    assert torch.equal(read_idx(p), decode_idx(p))


@needs_fmnist
def test_fashion_mnist_cached_is_bitwise_the_decode(cache_dir):
    ref = vision.fashion_mnist(cache=False)
    assert entries(cache_dir) == []
    for _ in range(2):  # the first load builds the cache, the second reads it
        got = vision.fashion_mnist()
        for a, b in ((got.train, ref.train), (got.test, ref.test)):
            assert a.x.dtype == b.x.dtype and a.y.dtype == b.y.dtype
            assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert len(entries(cache_dir)) == 4
    # the whole build_data for the default recipe too
    rec = load_recipe({"data": {"source": "fashion_mnist"}})
    off = load_recipe({"data": {"source": "fashion_mnist", "cache": False}})
    cached_b, plain_b = build_data(rec.data, 0), build_data(off.data, 0)
    for k in ("train", "val", "test"):
        assert torch.equal(cached_b.split(k).x, plain_b.split(k).x)
        assert torch.equal(cached_b.split(k).y, plain_b.split(k).y)


def test_changed_source_of_the_same_size_is_rebuilt(tmp_path, cache_dir):
    p = tmp_path / "s.idx"
    a = torch.randint(0, 256, (9, 9), dtype=torch.uint8)
    write_idx(p, a)
    assert torch.equal(read_idx(p), a)
    st = os.stat(p)
    b = (a.int() + 1).remainder(256).to(torch.uint8)
    write_idx(p, b)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: ctime and the hash still tell
    assert os.stat(p).st_size == st.st_size
    assert torch.equal(read_idx(p), b)
    assert len(entries(cache_dir)) == 1  # replaced, not one more


def test_old_racy_entry_is_rebuilt_with_a_plain_key(tmp_path, cache_dir, monkeypatch):
    p = write_idx(tmp_path / "r.idx", torch.arange(12, dtype=torch.uint8))
    read_idx(p)  # the source was written just now: its hash is kept and checked
    meta = _meta(entries(cache_dir)[0])
    assert "sha256" in meta[0]
    monkeypatch.setattr(cache, "RACY_SECONDS", -1e9)  # as if the source were old by now
    assert torch.equal(read_idx(p), torch.arange(12, dtype=torch.uint8))
    assert "sha256" not in _meta(entries(cache_dir)[0])[0]


def _meta(path: Path) -> list:
    import json

    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(json.loads(raw[8:8 + n])["__metadata__"]["sources"])


@pytest.mark.parametrize("damage", ["truncate", "garble_data", "garble_header", "empty", "pad"])
def test_damaged_cache_file_is_rebuilt_with_a_note(tmp_path, cache_dir, capsys, damage):
    a = torch.randint(0, 256, (50, 8), dtype=torch.uint8)
    p = write_idx(tmp_path / "d.idx", a)
    read_idx(p)
    (entry,) = entries(cache_dir)
    raw = bytearray(entry.read_bytes())
    if damage == "truncate":
        raw = raw[:-7]
    elif damage == "garble_data":
        raw[-100] ^= 0xFF
    elif damage == "garble_header":
        raw[20:30] = b"#" * 10
    elif damage == "empty":
        raw = bytearray()
    else:
        raw += b"\0" * 16
    entry.write_bytes(bytes(raw))
    capsys.readouterr()
    assert torch.equal(read_idx(p), a)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"trainlab: data: cache {entry} was damaged")
    assert err[0].endswith("; rebuilt")
    assert cache.load(entry, [p]) is not None  # the rebuilt file verifies
    assert torch.equal(read_idx(p), a) and capsys.readouterr().err == ""


_BUILD = """
import sys, torch
from trainlab.data.idx import read_idx
t = read_idx(sys.argv[1])
print(int(t.sum()), tuple(t.shape))
"""


def test_two_processes_building_at_once_both_succeed(tmp_path, cache_dir):
    a = torch.randint(0, 256, (3000, 28, 28), dtype=torch.uint8)
    p = write_idx(tmp_path / "big.idx.gz", a)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TRAINLAB_CACHE": str(cache_dir)}
    procs = [subprocess.Popen([sys.executable, "-c", _BUILD, str(p)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [pr.communicate(timeout=300) for pr in procs]
    for pr, (out, err) in zip(procs, outs):
        assert pr.returncode == 0, err
        assert out.split()[0] == str(int(a.sum()))
        assert err == ""
    (entry,) = entries(cache_dir)  # no temporary file left behind either
    assert sorted(os.listdir(cache_dir)) == [entry.name]
    # the entry is whole: read by the safetensors library itself, not by the cache's own loader (whose
    # answer for a source written seconds ago depends on the clock: the "racy" rule)
    from safetensors.torch import load_file

    assert torch.equal(load_file(entry)["data"], a)


def test_unwritable_cache_folder_falls_back_with_one_note(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TRAINLAB_CACHE", str(blocker / "decoded"))  # mkdir fails, even for root
    a = torch.randint(0, 256, (6, 6), dtype=torch.uint8)
    paths = [write_idx(tmp_path / f"u{i}.idx", a) for i in range(3)]
    for p in paths:
        assert torch.equal(read_idx(p), a)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be written" in err[0] and err[0].startswith("trainlab: data: cache folder")


def test_full_disk_falls_back_with_one_note(tmp_path, cache_dir, monkeypatch, capsys):
    import errno

    from trainlab import io

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io, "atomic_write", full)
    a = torch.randint(0, 256, (6, 6), dtype=torch.uint8)
    for i in range(2):
        assert torch.equal(read_idx(write_idx(tmp_path / f"f{i}.idx", a)), a)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    assert entries(cache_dir) == []


def test_turned_off_writes_nothing(tmp_path, cache_dir, monkeypatch, capsys):
    a = torch.randint(0, 256, (6, 6), dtype=torch.uint8)
    p = write_idx(tmp_path / "o.idx", a)
    assert torch.equal(read_idx(p, cache=False), a)
    monkeypatch.setenv("TRAINLAB_DATA_CACHE", "0")
    assert torch.equal(read_idx(p), a)
    assert not cache_dir.exists() and capsys.readouterr().err == ""


def test_recipe_key_turns_it_off(tmp_path, cache_dir, monkeypatch):
    root = tmp_path / "data"
    _fake_mnist(root / "mnist")
    monkeypatch.setenv("TRAINLAB_OFFLINE", "1")
    rec = load_recipe({"data": {"source": "mnist", "root": str(root), "cache": False, "val_fraction": 0.0}})
    off = build_data(rec.data, 0)
    assert not cache_dir.exists()
    rec.data.cache = True
    on = build_data(rec.data, 0)
    assert len(entries(cache_dir)) == 4
    assert torch.equal(on.train.x, off.train.x) and torch.equal(on.test.y, off.test.y)


def _fake_mnist(d: Path) -> None:
    d.mkdir(parents=True)
    for split, n in (("train", 40), ("t10k", 20)):
        write_idx(d / f"{split}-images-idx3-ubyte.gz", torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8))
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", torch.arange(n, dtype=torch.uint8) % 10)


def _fake_cifar(d: Path, n: int = 8) -> list[bytes]:
    d.mkdir(parents=True, exist_ok=True)
    blobs = []
    for i, name in enumerate([*cifar.TRAIN_FILES, cifar.TEST_FILE]):
        g = torch.Generator().manual_seed(i)
        rec = torch.randint(0, 256, (n, cifar.RECORD), dtype=torch.uint8, generator=g)
        rec[:, 0] = torch.arange(n) % 10
        blobs.append(rec.numpy().tobytes())
        (d / name).write_bytes(blobs[-1])
    return blobs


@pytest.mark.parametrize("archive", [False, True])
def test_cifar_cached_is_bitwise_the_decode(tmp_path, cache_dir, archive):
    d = tmp_path / "cifar10"
    _fake_cifar(d)
    if archive:
        with tarfile.open(tmp_path / cifar.ARCHIVE, "w:gz") as tar:
            for name in (*cifar.TRAIN_FILES, cifar.TEST_FILE):
                tar.add(d / name, arcname=f"cifar-10-batches-bin/{name}")
        d = tmp_path / "only-archive"
        d.mkdir()
        os.replace(tmp_path / cifar.ARCHIVE, d / cifar.ARCHIVE)
    ref = cifar.cifar10(str(d), cache=False)
    assert entries(cache_dir) == []
    for _ in range(2):
        got = cifar.cifar10(str(d))
        for a, b in ((got.train, ref.train), (got.test, ref.test)):
            assert a.x.dtype == b.x.dtype == torch.uint8 and a.y.dtype == b.y.dtype == torch.int64
            assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert len(entries(cache_dir)) == 1
