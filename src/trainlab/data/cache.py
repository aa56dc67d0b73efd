"""Decoded data sets cached as safetensors files and memory-mapped on the next run.

Decoding Fashion-MNIST's gzip IDX files costs 0.2-0.7 s a run, a CIFAR-10 .tar.gz more; the
decoded arrays are written once to `cache_dir()` and read back with a memory map, turned into
tensors without a copy (the map is copy-on-write: an in-place op never touches the file).

What makes an entry valid (docs/data.md, "The decoded-data cache"):
- the entry's file name is a hash of the source files' real paths and the cache format, so a
  changed source replaces its entry instead of piling up new ones;
- the fast key, compared on every load, is each source's size, mtime, ctime, inode and device.
  Rewriting a file changes its mtime and ctime (ctime cannot be set back by `touch` or `cp -p`);
  the one change it misses is a same-size rewrite within one timestamp tick of the last. So, as
  git does for its "racily clean" index entries, a source changed less than `RACY_SECONDS` before
  the entry was built is "racy": its SHA-256 is stored and checked on load, and once the source is
  older than that the entry is rebuilt (quietly, once) with a plain fast key;
- the cache file itself is checked on every load: header, exact size, and a CRC-32 of its data
  (about 10 ms for Fashion-MNIST). A file that fails is rebuilt, with one line on stderr.

Writers go through `trainlab.io.atomic_write` (a temporary file in the same folder, fsync,
rename), so two processes building at once both end with a whole file. A folder that cannot be
written never fails a run: the data is decoded as without the cache, said once per process.
Only tensors and a JSON header are stored; nothing is ever unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..io import cache_dir  # noqa: F401 - where entries live (shared with the catalogue snapshot)

FORMAT = "trainlab-decoded/1"  # bump when a decoder's output changes: old entries are then ignored
RACY_SECONDS = 2.0  # a source changed this recently may change again without its stat changing
_HEADER_MAX = 1 << 20
_DTYPES = {"U8": np.uint8, "I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64,
           "F32": np.float32, "F64": np.float64, "BOOL": np.bool_}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
_told_unwritable = False  # the "cannot be written" note is said once per process


class Damaged(Exception):
    """The cache file is not what its writer wrote (truncated, garbled, not a cache file)."""


def enabled(flag: bool = True) -> bool:
    """The recipe's `data.cache`, unless `TRAINLAB_DATA_CACHE=0` (or false/no/off) turns it off."""
    return flag and os.environ.get("TRAINLAB_DATA_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def entry_path(kind: str, sources: Sequence[Path]) -> Path:
    """Where the entry of `sources` decoded by `kind` lives (one entry per set of source paths)."""
    names = [os.path.realpath(p) for p in sources]
    key = hashlib.sha256(json.dumps([FORMAT, kind, names]).encode()).hexdigest()[:32]
    return cache_dir() / f"{kind}-{key}.safetensors"


def cached(kind: str, sources: Sequence[Path], decode: Callable[[], dict[str, torch.Tensor]],
           use: bool = True) -> dict[str, torch.Tensor]:
    """The tensors `decode()` makes from the files `sources`, from the cache when its entry is
    valid, else decoded and stored (when `use` and `enabled()`). Errors of `decode` (DataError)
    pass through; the cache itself never raises."""
    if not enabled(use):
        return decode()
    try:
        path, stats = entry_path(kind, sources), [_stat(p) for p in sources]
    except OSError:  # a source that cannot be read: decoding says so
        return decode()
    damaged = None
    try:
        found = load(path, sources, stats)
        if found is not None:
            return found
    except FileNotFoundError:
        pass
    except Damaged as e:
        damaged = str(e)
    except OSError:  # unreadable: rebuilt like a missing one
        pass
    started = time.time()
    tensors = decode()
    _store(path, sources, stats, started, tensors, damaged)
    return tensors


def load(path: Path, sources: Sequence[Path], stats: list[dict] | None = None) -> dict[str, torch.Tensor] | None:
    """The entry's tensors (memory-mapped, copy-on-write), or None when it is stale (a source
    changed). Raises Damaged when the file fails its own checks, OSError when it cannot be read."""
    stats = stats if stats is not None else [_stat(p) for p in sources]
    size = os.stat(path).st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= min(_HEADER_MAX, size - 8):
            raise Damaged("bad header length")
        try:
            header = json.loads(f.read(n))
            meta = header.pop("__metadata__")
            if meta["format"] != FORMAT:
                raise ValueError(meta["format"])
            saved, crcs = json.loads(meta["sources"]), json.loads(meta["crc32"])
            built = float(meta["built"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise Damaged(f"unreadable header ({type(e).__name__})") from None
    if not _fresh(saved, sources, stats, built):
        return None
    start, specs = 8 + n, []
    try:
        for name, t in header.items():
            b, e = (int(v) for v in t["data_offsets"])
            dtype = np.dtype(_DTYPES[t["dtype"]])
            shape = [int(d) for d in t["shape"]]
            if min(shape, default=1) < 0 or not 0 <= b <= e or e - b != int(np.prod(shape)) * dtype.itemsize:
                raise ValueError(name)
            specs.append((name, b, e, dtype, shape, int(crcs[name])))
    except (ValueError, KeyError, TypeError) as e:
        raise Damaged(f"unreadable header ({type(e).__name__})") from None
    expected = start + max((s[2] for s in specs), default=0)
    if size != expected:
        raise Damaged(f"{size} bytes, its header says {expected}")
    if size == start:
        data = np.zeros(0, np.uint8)
    else:  # mode "c": copy-on-write pages, so the tensors are writable and the file never changes
        data = np.memmap(path, dtype=np.uint8, mode="c", offset=start, shape=(size - start,))
    out = {}
    for name, b, e, dtype, shape, crc in specs:
        if zlib.crc32(data[b:e]) != crc:
            raise Damaged(f"checksum mismatch in {name!r}")
        out[name] = torch.from_numpy(data[b:e].view(dtype).reshape(shape))
    return out


def _stat(p: Path) -> dict:
    s = os.stat(p)
    return {"path": os.path.realpath(p), "size": s.st_size, "mtime_ns": s.st_mtime_ns, "ctime_ns": s.st_ctime_ns,
            "ino": s.st_ino, "dev": s.st_dev}


def _racy(stat: dict, when: float) -> bool:
    return max(stat["mtime_ns"], stat["ctime_ns"]) / 1e9 > when - RACY_SECONDS


def _sha256(p: Path) -> str:
    with open(p, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fresh(saved: list, sources: Sequence[Path], stats: list[dict], built: float) -> bool:
    """Whether the sources are the ones the entry was built from (see the module's docstring)."""
    if not isinstance(saved, list) or len(saved) != len(stats):
        return False
    for old, new, p in zip(saved, stats, sources):
        if not isinstance(old, dict) or {k: old.get(k) for k in new} != new:
            return False
        if "sha256" in old:  # racy when built: its content decides, until it is old enough to rebuild
            if not _racy(new, time.time()) or _sha256(p) != old["sha256"]:
                return False
    return True


def _store(path: Path, sources: Sequence[Path], stats: list[dict], started: float,
           tensors: dict[str, torch.Tensor], damaged: str | None) -> None:
    """Write the entry; a folder that cannot be written is told once and never fails the run."""
    global _told_unwritable
    from safetensors.numpy import save

    from ..io import atomic_write

    arrays = {k: np.ascontiguousarray(t.numpy()) for k, t in tensors.items()}
    if any(a.dtype not in _NAMES for a in arrays.values()):
        return  # a dtype the entry cannot hold: decoding again next time is all it costs
    saved = []
    for st, p in zip(stats, sources):
        if _stat(p) != st:  # changed while it was being decoded: what was decoded has no key
            return
        saved.append({**st, "sha256": _sha256(p)} if _racy(st, started) else st)
    try:
        # safetensors lays the tensors out aligned (largest itemsize first), so every view is aligned
        meta = {"format": FORMAT, "sources": json.dumps(saved), "built": repr(started),
                "crc32": json.dumps({k: zlib.crc32(a) for k, a in arrays.items()})}
        atomic_write(path, save(arrays, metadata=meta))
    except OSError as e:
        why = e.strerror or type(e).__name__
        if damaged:
            _note(f"cache {path} was damaged ({damaged}) and cannot be rewritten ({why}); decoded without it")
        elif not _told_unwritable:
            _note(f"cache folder {path.parent} cannot be written ({why}); decoding without it "
                  "(data.cache: false turns the cache off)")
        _told_unwritable = True
        return
    if damaged:
        _note(f"cache {path} was damaged ({damaged}); rebuilt")


def _note(line: str) -> None:
    print(f"trainlab: data: {line}", file=sys.stderr, flush=True)
