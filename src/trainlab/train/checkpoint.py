"""Checkpoints without pickle: weights in safetensors, other state as safetensors + JSON.

A checkpoint is a folder (model.safetensors, state.safetensors, state.json, manifest.json).
It is written into a temporary sibling folder and renamed into place; manifest.json (file
names with SHA-256) is written last, so a folder without a valid manifest is incomplete.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import RunDirError

MANIFEST = "manifest.json"


# --- nested state <-> (tensors, JSON) --------------------------------------------------------
def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """Replace every tensor in a nested structure by {"__tensor__": key}; collect tensors."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[flatten_state(k, tensors, f"{prefix}.k{i}"), flatten_state(v, tensors, f"{prefix}.{i}")]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        items = [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
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
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


# --- model weights ---------------------------------------------------------------------------
def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with shared (tied) tensors stored once and every tensor contiguous."""
    seen: dict[tuple[int, int, tuple], str] = {}
    out = {}
    for k, v in model.state_dict().items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if v.numel() and key in seen:
            continue  # tied weight: load_model_weights restores it through the module
        seen[key] = k
        out[k] = v.detach().cpu().contiguous()
    return out


def save_model_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    save_file(model_tensors(model), str(path), metadata=metadata)


def load_model_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights into `model`; refuses anything that is not a safetensors file."""
    path = Path(path)
    refuse_pickle(path)
    try:
        tensors = load_file(str(path))
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


def refuse_pickle(path: Path) -> None:
    """Pickle files can run code when loaded; trainlab never opens one."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: missing")
    if is_safetensors(path):
        return
    with open(path, "rb") as f:
        head = f.read(2)
    if (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head == b"PK":
        raise RunDirError(f"{path}: is a pickle (torch.save) file; trainlab refuses to load pickles because "
                          "they can execute code. Convert the weights to safetensors first.")
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


def save_checkpoint(folder: Path, model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Write a complete checkpoint folder atomically (temp folder, manifest last, rename)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        save_model_weights(model, tmp / "model.safetensors")
        tensors: dict[str, torch.Tensor] = {}
        meta = flatten_state(state, tensors)
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(meta))
        files = ["model.safetensors", "state.safetensors", "state.json"]
        for f in files:
            _fsync(tmp / f)
        (tmp / MANIFEST).write_text(json.dumps({"files": {f: _sha256(tmp / f) for f in files}}))
        _fsync(tmp / MANIFEST)
        old = folder.with_name(f".{folder.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def verify_checkpoint(folder: Path) -> str | None:
    """None if the folder is a complete checkpoint, else the reason it is not."""
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        return "no manifest (incomplete write)"
    try:
        files = json.loads(mpath.read_text())["files"]
    except (ValueError, KeyError):
        return "unreadable manifest"
    for name, digest in files.items():
        p = folder / name
        if not p.is_file():
            return f"{name} is missing"
        if _sha256(p) != digest:
            return f"{name} does not match its SHA-256 in the manifest"
    return None


def load_checkpoint_state(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    refuse_pickle(folder / "state.safetensors")
    tensors = load_file(str(folder / "state.safetensors"))
    return unflatten_state(json.loads((folder / "state.json").read_text()), tensors)
