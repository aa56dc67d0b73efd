"""The run directory: everything a run did, enough to evaluate, report, resume and export it."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import RunDirError
from ..io import atomic_write  # noqa: F401 - re-exported: the run directory writes through it
from ..redact import redact_all  # a --storage URL's password never reaches env.json


def process_identity() -> dict[str, Any]:
    """Who is writing a run, for env.json: `trainlab runs` tells a live run from one whose process
    died (SIGKILL leaves status "running"). A process that takes over a run (resume) writes it again."""
    return {"host": platform.node(), "pid": os.getpid(), "pid_start": process_start(os.getpid())}


def process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux /proc), or None if unknown.

    With the pid it identifies a process even after the pid has been reused by another one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the command name
    except (OSError, ValueError, IndexError):
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class RunDir:
    """A run directory (see DESIGN.md): recipe.yaml, env.json, metrics.jsonl, checkpoints/, plots/, eval/."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, root: str | Path, name: str, path: str | Path | None = None) -> "RunDir":
        if path is not None:
            p = Path(path)
            if p.exists() and any(p.iterdir()):
                raise RunDirError(f"--run-dir {p}: folder exists and is not empty (nothing is overwritten)")
        else:
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            p = Path(root) / f"{name}-{stamp}"
            i = 1
            while p.exists():
                i += 1
                p = Path(root) / f"{name}-{stamp}-{i}"
        p.mkdir(parents=True, exist_ok=True)
        return cls(p)

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        p = Path(path)
        if not (p / "recipe.yaml").is_file():
            raise RunDirError(f"{p}: not a run directory (no recipe.yaml)")
        return cls(p)

    # --- files -----------------------------------------------------------------------------
    @property
    def recipe_path(self) -> Path:
        return self.path / "recipe.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def checkpoint(self, which: str) -> Path:
        return self.path / "checkpoints" / which

    def plot(self, name: str) -> Path:
        (self.path / "plots").mkdir(exist_ok=True)
        return self.path / "plots" / name

    def write_recipe(self, recipe) -> None:
        atomic_write(self.recipe_path, recipe.to_yaml())

    def write_json(self, rel: str, obj: Any) -> Path:
        p = self.path / rel
        atomic_write(p, json.dumps(obj, indent=2, default=_json_default) + "\n")
        return p

    def read_json(self, rel: str) -> Any:
        p = self.path / rel
        if not p.is_file():
            raise RunDirError(f"{p}: missing")
        return json.loads(p.read_text())

    def write_env(self, device: str, seed: int, threads: int, extra: dict | None = None) -> None:
        import torch

        env = {
            "python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "machine": platform.machine(), "processor": platform.processor(), "device": device,
            "threads": threads, "seed": seed, "cpu_count": os.cpu_count(),
            "git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain")),
            "argv": redact_all(sys.argv), "start": dt.datetime.now().isoformat(timespec="seconds"),
            **process_identity(),
        }
        env.update(extra or {})
        self.write_json("env.json", env)

    def update_env(self, **fields: Any) -> None:
        env = self.read_json("env.json") if (self.path / "env.json").is_file() else {}
        env.update(fields)
        self.write_json("env.json", env)

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON record to metrics.jsonl (one line, flushed)."""
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record, default=_json_default) + "\n")

    def metrics_size(self) -> int:
        """Bytes in metrics.jsonl; a checkpoint records it so that a resume can cut the log back to it."""
        try:
            return self.metrics_path.stat().st_size
        except FileNotFoundError:
            return 0

    def truncate_metrics(self, size: int) -> None:
        """Keep the first `size` bytes of metrics.jsonl (atomically): the records written up to a checkpoint."""
        if self.metrics_path.is_file():
            data = self.metrics_path.read_bytes()
            if len(data) > size:
                atomic_write(self.metrics_path, data[:size])

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        out = []
        for line in self.metrics_path.read_text().splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line torn by a crash is not a record
        return out


def _json_default(o: Any) -> Any:
    import torch

    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
