"""Checkpoints without pickle: weights in safetensors, other state as safetensors + JSON.

A checkpoint is a folder (model.safetensors, state.safetensors, state.json, manifest.json).
It is written into a temporary sibling folder and renamed into place; manifest.json (file
names with SHA-256) is written last, so a folder without a valid manifest is incomplete.
A run keeps `last` and `previous` (the one before it) plus `best` (hard links to the files of
the `last` it was saved with): when the newest is damaged, `newest_checkpoint` falls back to the
next complete one. The trainer writes them on a background thread (`CheckpointWriter`).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from ..errors import RunDirError

MANIFEST = "manifest.json"


_SCALARS = (int, float, str, bool, type(None))


# --- nested state <-> (tensors, JSON) --------------------------------------------------------
def _host(t: torch.Tensor, copy: bool = False) -> torch.Tensor:
    """`t` on the CPU and contiguous; with `copy`, never sharing memory with `t` (one copy either way)."""
    return t.detach().to("cpu", copy=copy).contiguous()


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t", copy: bool = False) -> Any:
    """Replace every tensor in a nested structure by {"__tensor__": key}; collect tensors (copies
    with `copy`, so that later in-place updates cannot change them)."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = _host(obj, copy)
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[flatten_state(k, tensors, f"{prefix}.k{i}", copy),
                              flatten_state(v, tensors, f"{prefix}.{i}", copy)] for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        if all(type(v) in _SCALARS for v in obj):  # e.g. the 625 ints of Python's RNG state: as they are
            items = list(obj)
        else:
            items = [flatten_state(v, tensors, f"{prefix}.{i}", copy) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if callable(obj):
        return None  # e.g. LambdaLR's lambdas: rebuilt from the recipe, not stored
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(unflatten_state(v, tensors) for v in obj["__tuple__"])
        if "__ndarray__" in obj:
            return np.array(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: unflatten_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
    if "mps" in state and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


# --- model weights ---------------------------------------------------------------------------
def model_tensors(model: torch.nn.Module, copy: bool = False) -> dict[str, torch.Tensor]:
    """The state dict with shared (tied) tensors stored once and every tensor contiguous (copies
    with `copy`)."""
    seen: dict[tuple[int, int, tuple], str] = {}
    out = {}
    for k, v in model.state_dict().items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if v.numel() and key in seen:
            continue  # tied weight: load_model_weights restores it through the module
        seen[key] = k
        out[k] = _host(v, copy)
    return out


# --- sparse tensors: a bitmask plus the non-zero values ---------------------------------------
# A pruned weight is mostly zeros, and dense-with-zeros saves nothing; stored as one bit per entry
# plus its non-zero values it takes (1/32 + density) of the fp32 bytes. Tensors of at least
# SPARSE_MIN_NUMEL entries of which at least SPARSE_MIN_ZEROS are zero are stored so, as
# `<name>::mask` (uint8, packed bits, C order) and `<name>::values`; the header's metadata
# "trainlab.sparse" maps each name to its shape. Any other file (every older one) loads as it is.
SPARSE_META = "trainlab.sparse"
SPARSE_MIN_ZEROS = 0.5
SPARSE_MIN_NUMEL = 1024


def encode_sparse(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str] | None]:
    """(tensors with the mostly-zero floating-point ones as mask + values, the header metadata or None)."""
    out, shapes = {}, {}
    for k, v in tensors.items():
        if v.is_floating_point() and v.numel() >= SPARSE_MIN_NUMEL and \
                (v == 0).sum().item() >= SPARSE_MIN_ZEROS * v.numel():
            flat = v.reshape(-1)
            nonzero = flat != 0
            out[f"{k}::mask"] = torch.from_numpy(np.packbits(nonzero.numpy()))
            out[f"{k}::values"] = flat[nonzero].contiguous()
            shapes[k] = list(v.shape)
        else:
            out[k] = v
    return out, ({SPARSE_META: json.dumps(shapes)} if shapes else None)


def decode_sparse(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> dict[str, torch.Tensor]:
    """The dense tensors of a file `encode_sparse` wrote (unchanged for a file without sparse ones)."""
    shapes = json.loads((metadata or {}).get(SPARSE_META, "{}"))
    for k, shape in shapes.items():
        mask, values = tensors.pop(f"{k}::mask"), tensors.pop(f"{k}::values")
        n = int(np.prod(shape))
        nonzero = torch.from_numpy(np.unpackbits(mask.numpy(), count=n).astype(bool))
        dense = torch.zeros(n, dtype=values.dtype)
        dense[nonzero] = values
        tensors[k] = dense.reshape(shape)
    return tensors


def weights_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """model.safetensors' bytes for `tensors` (mostly-zero ones encoded, see `encode_sparse`)."""
    encoded, sparse = encode_sparse(tensors)
    meta = {**(metadata or {}), **(sparse or {})}
    return save(encoded, metadata=meta or None)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The dense tensors of a model.safetensors file (sparse ones decoded)."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return decode_sparse(tensors, metadata)


def save_model_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    Path(path).write_bytes(weights_bytes(model_tensors(model), metadata))


def load_model_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights into `model`; refuses anything that is not a safetensors file."""
    path = Path(path)
    refuse_pickle(path)
    try:
        tensors = read_weights(path)
    except Exception as e:  # safetensors raises its own error types for a bad header
        raise RunDirError(f"{path}: not a valid safetensors file ({e})") from None
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = set(model.state_dict()) - set(model_tensors(model))
    if unexpected or set(missing) - tied:
        raise RunDirError(f"{path}: weights do not fit the model (missing {sorted(set(missing) - tied)[:3]}, "
                          f"unexpected {sorted(unexpected)[:3]})")


def is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte little-endian header length, then a JSON header."""
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= size - 8 and head[8:9] == b"{"


def is_pickle(path: Path) -> bool:
    """A pickle (protocol 2+ starts with PROTO 0x80) or a torch.save zip archive (which holds one)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head == b"PK"


PICKLE_REFUSED = ("is a pickle (torch.save) file; trainlab refuses to load pickles because unpickling can "
                  "execute code. Convert the weights to safetensors first.")


def refuse_pickle(path: Path) -> None:
    """Pickle files can run code when loaded; trainlab never opens one. Only its first bytes are read."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: missing")
    if is_safetensors(path):
        return
    if is_pickle(path):
        raise RunDirError(f"{path}: {PICKLE_REFUSED}")
    raise RunDirError(f"{path}: not a safetensors file")


# --- checkpoint folders ----------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


FILES = ("model.safetensors", "state.safetensors", "state.json")


class Snapshot:
    """What a checkpoint holds, taken at one instant: tensors copied to the CPU (later optimizer
    steps cannot change them), the rest as JSON. Writing it can then happen on another thread."""

    def __init__(self, model: torch.nn.Module, state: dict[str, Any], copy: bool = True):
        self.weights = model_tensors(model, copy)
        self.tensors: dict[str, torch.Tensor] = {}
        self.meta = json.dumps(flatten_state(state, self.tensors, copy=copy))


def _write(path: Path, data: bytes) -> str:
    """Write `data` to `path` and fsync it; returns its SHA-256 (of the bytes meant, not re-read)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


def _replace(tmp: Path, folder: Path, previous: Path | None) -> None:
    """Rename the complete `tmp` into `folder`; the folder it replaces becomes `previous` (or goes)."""
    # only renames between the old state and the new: a crash at any point leaves `folder` or
    # `previous` complete, never a torn one, and the folders are missing for microseconds at most
    # (the one `previous` replaces is renamed aside and deleted after, not deleted in place)
    old = Path(previous) if previous is not None else folder.with_name(f".{folder.name}.old")
    trash = old.with_name(f".{old.name}.trash-{os.getpid()}")
    if old.exists():
        os.replace(old, trash)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    _fsync(folder.parent)
    shutil.rmtree(trash, ignore_errors=True)
    if previous is None:
        shutil.rmtree(old, ignore_errors=True)


def _temp_folder(folder: Path) -> Path:
    """A new temporary sibling of `folder`, named with this process's pid; removes the temporary
    folders left by processes killed mid-write, never those of a process still alive."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.parent.glob(f".{folder.name}.tmp-*"), *folder.parent.glob(".*.trash-*")]:
        if _left_by_dead_process(stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-{os.getpid()}-"))


def _left_by_dead_process(name: str) -> bool:
    """For `.last.tmp-PID-xxxx` and `.previous.trash-PID`: whether process PID is gone. A name
    without a pid (written before pids were) counts as left behind."""
    m = re.search(r"\.(?:tmp|trash)-(\d+)(?:-|$)", name)
    if m is None:
        return True
    pid = int(m.group(1))
    if pid == os.getpid():
        return False  # this process's own write in flight (its failures remove their folder themselves)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def write_checkpoint(folder: Path, snap: Snapshot, previous: Path | None = None) -> None:
    """Write a complete checkpoint folder atomically (temp folder, manifest last, rename).

    With `previous`, the checkpoint being replaced is kept there (and the one before it dropped),
    so a damaged newest checkpoint still leaves a complete one to fall back to.
    """
    folder = Path(folder)
    tmp = _temp_folder(folder)
    try:
        digests = {"model.safetensors": _write(tmp / "model.safetensors", weights_bytes(snap.weights)),
                   "state.safetensors": _write(tmp / "state.safetensors", save(snap.tensors)),
                   "state.json": _write(tmp / "state.json", snap.meta.encode())}
        _write(tmp / MANIFEST, json.dumps({"files": digests}).encode())
        _replace(tmp, folder, previous)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_checkpoint(folder: Path, model: torch.nn.Module, state: dict[str, Any],
                    previous: Path | None = None) -> None:
    """Snapshot and write a checkpoint on this thread (see `write_checkpoint`)."""
    write_checkpoint(folder, Snapshot(model, state, copy=False), previous)


def link_checkpoint(source: Path, folder: Path) -> None:
    """Make `folder` a complete copy of the checkpoint `source` by hard links (no data written), as
    atomically as `write_checkpoint`. Checkpoint files are never changed in place, so the two
    folders can share them; where the file system has no hard links, the files are copied."""
    folder = Path(folder)
    tmp = _temp_folder(folder)
    try:
        for name in (*FILES, MANIFEST):
            try:
                os.link(Path(source) / name, tmp / name)
            except OSError:
                shutil.copy2(Path(source) / name, tmp / name)
                _fsync(tmp / name)
        _replace(tmp, folder, None)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class CheckpointWriter:
    """Writes checkpoints on a background thread, so training goes on while the files are
    serialized and fsynced (~9 ms for the 200k-parameter MLP on these disks, up to 3 times an
    epoch; 5% of its epoch). `save` snapshots the state on the caller's thread first, so what is
    written is the state at the call. One write is in flight at most: a second `save` first waits
    for the one before, so checkpoints land in order. `wait()` returns once everything submitted is
    on disk and re-raises a failed write's error; the trainer waits before it reads a checkpoint
    back and when `fit` ends. A crash mid-write leaves the checkpoints as they were before it,
    exactly as a synchronous write would (temp folder, then rename)."""

    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None  # started by the first save, stopped by close()
        self._pending: Future | None = None

    def save(self, folder: Path, model: torch.nn.Module, state: dict[str, Any], previous: Path | None = None,
             best: Path | None = None) -> None:
        """Checkpoint into `folder` (rotating the one it replaces into `previous`); with `best`,
        that folder becomes the same checkpoint too (hard links)."""
        snap = Snapshot(model, state)
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="trainlab-checkpoint")
        self._pending = self._pool.submit(self._write, folder, snap, previous, best)

    @staticmethod
    def _write(folder: Path, snap: Snapshot, previous: Path | None, best: Path | None) -> None:
        write_checkpoint(folder, snap, previous)
        if best is not None:
            link_checkpoint(folder, best)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # re-raises the writer's error here

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


def verify_checkpoint(folder: Path) -> str | None:
    """None if the folder is a complete checkpoint, else the reason it is not."""
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        return "no manifest (incomplete write)"
    try:
        files = json.loads(mpath.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return "unreadable manifest"
    for name in FILES:
        p = folder / name
        if not p.is_file():
            return f"{name} is missing"
        if name.endswith(".safetensors") and is_pickle(p):
            return f"{name} {PICKLE_REFUSED}"
        if name not in files:
            return f"{name} is not in the manifest"
    for name, digest in files.items():
        p = folder / name
        if not p.is_file():
            return f"{name} is missing"
        if _sha256(p) != digest:
            return f"{name} does not match its SHA-256 in the manifest (damaged or truncated)"
    return None


def load_checkpoint_state(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    refuse_pickle(folder / "state.safetensors")
    try:
        tensors = load_file(str(folder / "state.safetensors"))
        meta = json.loads((folder / "state.json").read_text())
    except Exception as e:  # safetensors' own header errors, bad JSON
        raise RunDirError(f"{folder}: unreadable checkpoint state ({e})") from None
    return unflatten_state(meta, tensors)


class _NoTensors(dict):
    def __missing__(self, key):
        return None


def checkpoint_step(folder: Path) -> int:
    """The optimizer step a checkpoint was taken at, read from state.json alone (no tensors)."""
    meta = json.loads((Path(folder) / "state.json").read_text())
    return int(unflatten_state(meta, _NoTensors())["trainer"]["step"])


_PREFERENCE = {"last": 0, "previous": 1, "best": 2}


def newest_checkpoint(root: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The complete checkpoint under `root` with the most steps, and the (folder, reason) of each skipped one.

    Every folder is verified against its manifest first; one that is incomplete, damaged or holds
    a pickle is skipped, so resume falls back to the previous complete checkpoint.
    """
    root = Path(root)
    found: list[tuple[int, int, Path]] = []
    skipped: list[tuple[Path, str]] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    for folder in folders:
        reason = verify_checkpoint(folder)
        if reason is None:
            try:
                found.append((checkpoint_step(folder), -_PREFERENCE.get(folder.name, 9), folder))
                continue
            except (OSError, ValueError, KeyError, TypeError) as e:
                reason = f"state.json unreadable ({e})"
        skipped.append((folder, reason))
    if not found:
        return None, skipped
    found.sort(reverse=True)
    return found[0][2], skipped
