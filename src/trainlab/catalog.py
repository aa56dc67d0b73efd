"""The catalogue of pluggable kinds: kind -> the registry of its built-in entries.

`trainlab list` (its KIND choices included) and the recipe reference (docgen) read this one table, so a
registry added here shows up in both with no other edit. Each kind names its module and attribute, and
`kinds()` answers without importing any of them (`trainlab --help` stays light).
"""
from __future__ import annotations

from .registry import Registry

# kind -> (module, attribute), in the order `trainlab list` and the reference show them
CATALOG: dict[str, tuple[str, str]] = {
    "sources": ("trainlab.data", "SOURCES"),
    "models": ("trainlab.models", "MODELS"),
    "losses": ("trainlab.losses", "LOSSES"),
    "optimizers": ("trainlab.optim", "OPTIMIZERS"),
    "schedules": ("trainlab.optim", "SCHEDULES"),
    "augments": ("trainlab.data", "AUGMENTS"),
}


def kinds() -> list[str]:
    """The catalogue's kinds, in order (imports no component module)."""
    return list(CATALOG)


def registries() -> dict[str, Registry]:
    """Every kind's registry, in the catalogue's order (imported here, not at the top: `kinds()`
    must answer without torch)."""
    from .data import AUGMENTS, SOURCES
    from .losses import LOSSES
    from .models import MODELS
    from .optim import OPTIMIZERS, SCHEDULES

    found = {"SOURCES": SOURCES, "MODELS": MODELS, "LOSSES": LOSSES, "OPTIMIZERS": OPTIMIZERS,
             "SCHEDULES": SCHEDULES, "AUGMENTS": AUGMENTS}
    return {kind: found[attr] for kind, (_, attr) in CATALOG.items()}
