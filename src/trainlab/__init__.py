"""trainlab: a deep-learning training and optimization lab on PyTorch, driven by one YAML recipe.

The public names are imported on first use (PEP 562 `__getattr__`), so `import trainlab` and
`trainlab --help` (which imports trainlab.cli, and so this package) import no torch: torch,
torchmetrics and the rest come with the first `trainlab.train`, `trainlab.Recipe`, ... that is used.
`from trainlab import train, load_run` works as before.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from .errors import TrainlabError

if TYPE_CHECKING:
    from .api import LoadedRun, Run, evaluate, load_run, resume, train
    from .recipe import Recipe, load_recipe
    from .track.rundir import RunDir
    from .train import Trainer

# public name -> the module that defines it
_LAZY = {
    "LoadedRun": "trainlab.api", "Run": "trainlab.api", "evaluate": "trainlab.api", "load_run": "trainlab.api",
    "resume": "trainlab.api", "train": "trainlab.api",
    "Recipe": "trainlab.recipe", "load_recipe": "trainlab.recipe",
    "RunDir": "trainlab.track.rundir",
    "Trainer": "trainlab.train",
}

__all__ = ["LoadedRun", "Recipe", "Run", "RunDir", "Trainer", "TrainlabError", "evaluate", "load_recipe", "load_run",
           "resume", "train"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """`trainlab.train` is the function `trainlab.api.train`, not the subpackage of the same name.

    The import system sets a package's attribute to each subpackage when it is first imported, so
    the first `import trainlab.train...` (anywhere, e.g. inside trainlab.api) would replace the function by
    the subpackage. A property wins over that: it reads the function, and the import system's assignment
    is dropped (the subpackage stays in sys.modules["trainlab.train"], where `from trainlab.train import
    Trainer` finds it)."""

    @property
    def train(self):
        return importlib.import_module("trainlab.api").train

    @train.setter
    def train(self, value) -> None:
        pass


sys.modules[__name__].__class__ = _Package
