"""The catalogue of pluggable kinds: kind -> the registry of its built-in entries.

`trainlab list` (its KIND choices included) and the recipe reference (docgen) read this one table, so a
registry added here shows up in both with no other edit. Each kind names its module and attribute, and
`kinds()` answers without importing any of them (`trainlab --help` stays light).

The registries live in modules that import torch (~1.5-4 s), so what `trainlab list` and `trainlab
reference` show is kept as a snapshot: `cached(key, make)` stores `make()` as JSON in the cache folder
(`$TRAINLAB_CACHE`, as the decoded data sets), under a digest of every trainlab source file and the
torch and pydantic versions. Any edit to trainlab, or another torch, makes a new digest, so a snapshot
is never stale; a missing, unreadable or unwritable one only means building it live.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # registry imports pydantic, which `trainlab --help` (KIND choices) does not need
    from .registry import Registry

# kind -> (module, attribute), in the order `trainlab list` and the reference show them
CATALOG: dict[str, tuple[str, str]] = {
    "sources": ("trainlab.data", "SOURCES"),
    "models": ("trainlab.models", "MODELS"),
    "losses": ("trainlab.losses", "LOSSES"),
    "optimizers": ("trainlab.optim", "OPTIMIZERS"),
    "schedules": ("trainlab.optim", "SCHEDULES"),
    "augments": ("trainlab.data", "AUGMENTS"),
    "preprocess": ("trainlab.data.preprocess", "PREPROCESS"),
    "metrics": ("trainlab.metrics", "METRICS"),
    "trackers": ("trainlab.track.trackers", "TRACKERS"),
}


def kinds() -> list[str]:
    """The catalogue's kinds, in order (imports no component module)."""
    return list(CATALOG)


def registries() -> dict[str, Registry]:
    """Every kind's registry, in the catalogue's order."""
    return {kind: getattr(importlib.import_module(module), attr) for kind, (module, attr) in CATALOG.items()}


def rows() -> dict[str, list[dict[str, Any]]]:
    """Per kind, each entry's name, aliases, description and option names (what `trainlab list`
    shows), from the snapshot when there is one."""
    return cached("list", _live_rows)


def registries_loaded() -> bool:
    """Whether any registry module is imported in this process: then something may have registered
    an entry of its own (a plugin, a test), which only the live registries show."""
    import sys

    return any(module in sys.modules for module, _ in CATALOG.values())


def _live_rows() -> dict[str, list[dict[str, Any]]]:
    return {kind: [{"name": e.name, "aliases": list(e.aliases), "description": e.description,
                    "options": list(reg.option_names(e.name))} for e in reg.entries()]
            for kind, reg in registries().items()}


def source_digest() -> str:
    """A digest of every trainlab source file and the versions of torch and pydantic: what the
    registries, their option signatures and the schema are made of."""
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
    for dist in ("torch", "pydantic"):
        try:
            h.update(f"{dist}={version(dist)}".encode())
        except PackageNotFoundError:
            h.update(f"{dist}=?".encode())
    return h.hexdigest()[:24]


def cached(key: str, make: Callable[[], Any]) -> Any:
    """`make()` (JSON-able), from the snapshot `catalog-KEY-DIGEST.json` when it exists and reads,
    otherwise built and stored (a folder that cannot be written only costs the speed). Always
    `make()` once a registry module is imported (`registries_loaded`)."""
    from .io import atomic_write, cache_dir

    if registries_loaded():  # live: as cheap as the snapshot now, and it has this process's own entries
        return make()
    path = cache_dir() / f"catalog-{key}-{source_digest()}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))["value"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = make()
    try:
        atomic_write(path, json.dumps({"value": value}))
    except OSError:
        pass
    return value
