"""Which process writes a run: its host, pid and start time (env.json, the run lock)."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


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
