"""The run directory: everything a run did, enough to evaluate, report, resume and export it."""
from __future__ import annotations

import datetime as dt
import errno
import itertools
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import RunDirError
from ..io import atomic_write  # noqa: F401 - re-exported: the run directory writes through it
from ..redact import redact_all  # a --storage URL's password never reaches env.json
from . import lock as _lock
from .process import process_identity, process_start  # noqa: F401 - re-exported

NAME_MAX = 100  # characters of a name in a folder name (the time stamp comes on top)


def safe_name(name: str, default: str = "run") -> str:
    """`name` as a safe file name: letters, digits and `.-_` only (others become `_`), no `..`,
    not starting with `.` or `-`, at most NAME_MAX characters; `default` when nothing is left."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))
    s = re.sub(r"\.{2,}", ".", s).lstrip("._-")[:NAME_MAX]
    return s or default


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
        """A new, empty run directory, locked for this process (see track/lock.py): release it with
        `release()` or use it as a context manager. `path` (the user's --run-dir) may be anywhere but
        must be empty; else `<root>/<name>-<time stamp>`, with `name` made a safe file name (a note
        says so) so that the folder is always inside `root`. Of two processes creating the same
        folder at once exactly one gets it; the other gets RunDirError."""
        if path is not None:
            p = Path(path)
            if p.exists() and _entries(p) and not (p / _lock.LOCK).exists():
                raise RunDirError(f"--run-dir {p}: folder exists and is not empty (nothing is overwritten)")
            p.mkdir(parents=True, exist_ok=True)
            rd = cls(p).lock()  # a second process creating it too fails here, naming the holder
            if _entries(p):  # ... or, had the first already finished, finds its files
                rd.release()
                raise RunDirError(f"--run-dir {p}: folder exists and is not empty (nothing is overwritten)")
            return rd
        safe = safe_name(name)
        if safe != name:
            print(f"trainlab: note: name {name!r} is not a safe folder name; the run folder is named {safe!r}-…",
                  file=sys.stderr, flush=True)
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for i in itertools.count(1):
            p = root / (f"{safe}-{stamp}" if i == 1 else f"{safe}-{stamp}-{i}")
            try:
                p.mkdir()  # atomic: of two processes making the same name, one gets FileExistsError
                break
            except FileExistsError:
                continue
        if p.resolve().parent != root.resolve():  # safe_name makes this impossible; kept as the promise
            raise RunDirError(f"{p}: run folder would not be inside output.root {root}")
        return cls(p).lock()

    # --- one writer (track/lock.py) ---------------------------------------------------------
    def lock(self) -> "RunDir":
        """Take the run's lock (reentrant) and check that none of its files is a symbolic link;
        returns self, for `with rd.lock():`. Raises RunDirError naming the holder or the link."""
        _lock.acquire(self.path)
        try:
            self.check_links()
        except BaseException:
            _lock.release(self.path)
            raise
        return self

    def release(self) -> None:
        _lock.release(self.path)

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # --- nothing written through a symbolic link --------------------------------------------
    def check_links(self) -> None:
        """Raise RunDirError naming the first file or folder in the run that is a symbolic link:
        writing through it would change a file outside the run."""
        for top, dirs, files in os.walk(self.path):  # does not follow links into folders
            for n in sorted(dirs + files):
                if os.path.islink(os.path.join(top, n)):
                    raise _link_error(Path(top) / n)

    def inside(self, rel: str | Path) -> Path:
        """`path / rel`, checked for writing: `rel` is relative, has no `..`, and no part of it below
        the run directory is a symbolic link. Raises RunDirError naming the link."""
        rel = Path(rel)
        if rel.is_absolute() or ".." in rel.parts:
            raise RunDirError(f"{self.path}: {rel} is not a path inside the run")
        p = self.path
        for part in rel.parts:
            p = p / part
            if p.is_symlink():
                raise _link_error(p)
        return p

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
        """plots/<name>, checked for writing (`inside`); makes plots/."""
        self.inside("plots").mkdir(exist_ok=True)
        return self.inside(f"plots/{name}")

    def write_recipe(self, recipe) -> None:
        atomic_write(self.inside("recipe.yaml"), recipe.to_yaml())

    def write_json(self, rel: str, obj: Any) -> Path:
        p = self.inside(rel)
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
        line = (json.dumps(record, default=_json_default) + "\n").encode()
        try:  # O_NOFOLLOW: a metrics.jsonl that is a symbolic link is refused, not appended through
            fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o666)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _link_error(self.metrics_path) from None
            raise
        with os.fdopen(fd, "wb") as f:
            f.write(line)

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
                atomic_write(self.inside("metrics.jsonl"), data[:size])

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


def _entries(p: Path) -> list[str]:
    """What a folder holds, less the lock file (a run folder holding only that is still empty)."""
    return [n for n in os.listdir(p) if n != _lock.LOCK]


def _link_error(p: Path) -> RunDirError:
    return RunDirError(f"{p}: is a symbolic link (to {os.readlink(p)}); a run's files must be inside the "
                       "run directory, so nothing is written through it")


def _json_default(o: Any) -> Any:
    import torch

    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
