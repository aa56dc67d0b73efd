"""The catalogue of pluggable kinds: kind -> the registry of its built-in entries.

`trainlab list` (its KIND choices included) and the recipe reference (docgen) read this one table, so a
registry added here shows up in both with no other edit. Each kind names its module and attribute, and
`kinds()` answers without importing any of them (`trainlab --help` stays light).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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
