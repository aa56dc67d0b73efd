"""One writer per run directory: an exclusive, non-blocking `flock` on `<run>/.lock`.

Every command that writes into a run (train, train --resume, evaluate, report, lr_find into a
run) holds it for as long as it writes; a second one fails at once with RunDirError naming the
holder (`<run>: in use by pid N on HOST since TIME`). The kernel drops the lock when its process
dies, however it dies, so a lock is never left held; the file itself stays. While held it says
who holds it (JSON: pid, pid_start, host, since); a clean release empties it, so a file that
still names a process when its lock is free was left by a process that died (SIGKILL, power
cut): it is taken over with a note. The file is never deleted: deleting a lock file lets two
processes lock two different files of the same name.

Holding is reentrant within a process (`api.report` calls `api.evaluate`): a second `flock`
on another descriptor of the same file would conflict with the first, so a count per run
directory (its resolved path) is kept instead.
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import RunDirError
from .process import process_identity

LOCK = ".lock"

_held: dict[str, list[int]] = {}  # resolved run path -> [descriptor, count]
_mutex = threading.Lock()


def acquire(run: str | Path) -> None:
    """Take the run's lock for this process (again: one more count). Raises RunDirError if another
    process holds it, or if the lock file is a symbolic link."""
    key = str(Path(run).resolve())
    with _mutex:
        if key in _held:
            _held[key][1] += 1
            return
        try:
            fd = os.open(os.path.join(key, LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise RunDirError(f"{Path(run) / LOCK}: is a symbolic link; a run's files must be inside it") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read(fd, wait=True)
            os.close(fd)
            raise RunDirError(f"{run}: in use by {describe(info)} (another trainlab command writes into it; "
                              "wait for it to end, or stop it)") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            old = _read(fd)
            if old and old.get("pid") != os.getpid():
                print(f"trainlab: note: {run}: taking over the lock left by {describe(old)} "
                      "(that process no longer holds it)", file=sys.stderr, flush=True)
            _write(fd, holder_record())
        except BaseException:
            os.close(fd)  # closing drops the flock
            raise
        _held[key] = [fd, 1]


def release(run: str | Path) -> None:
    """Give back one count of the run's lock; the last one empties the lock file and unlocks it."""
    key = str(Path(run).resolve())
    with _mutex:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
        try:
            os.ftruncate(entry[0], 0)  # emptied while still locked: a crash leaves the record, a release none
        except OSError:
            pass  # e.g. a full disk; the next holder then sees a record of a process that is gone: a note
        os.close(entry[0])


def held(run: str | Path) -> bool:
    """Whether this process holds the run's lock."""
    return str(Path(run).resolve()) in _held


def holder_record() -> dict[str, Any]:
    return {**process_identity(), "since": dt.datetime.now().isoformat(timespec="seconds")}


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process (its lock file names none)"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}"


def _read(fd: int, wait: bool = False) -> dict[str, Any] | None:
    # the holder writes its record right after it locks; `wait` gives it that moment (up to ~0.2 s)
    for _ in range(20 if wait else 1):
        try:
            text = os.pread(fd, 4096, 0).decode()
            if text.strip():
                info = json.loads(text)
                return info if isinstance(info, dict) else None
        except (OSError, ValueError):
            return None
        if wait:
            time.sleep(0.01)
    return None


def _write(fd: int, info: dict[str, Any]) -> None:
    data = (json.dumps(info) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
