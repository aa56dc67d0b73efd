"""`model: {name: custom, import: "package.module:Name", args: {...}}`: the user's own nn.Module.

The one escape hatch from registry names (STYLE.md). `Name` is a class or a factory function
found in an importable module or in a Python file (`path/to/net.py:Name`). It is called with
`args`, plus whichever of `info`, `input_shape`, `num_classes`, `output_dim`, `vocab_size` its
signature names and `args` leaves out, so a custom model needs no size typed by hand either.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field
from torch import nn

from ..errors import RecipeError
from .init import Init, apply_init


def is_file_spec(spec: str) -> bool:
    """`import` names a Python file (a path) rather than an importable module."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def file_path(spec: str) -> Path:
    return Path(spec).expanduser().resolve()


def _load_module(spec: str):
    if is_file_spec(spec):
        path = file_path(spec)
        if not path.is_file():
            raise RecipeError(f"model.import: {spec}: file not found")
        # a stable, unique module name per file, so two files named net.py do not collide
        name = f"trainlab_custom_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # dataclasses and typing look the module up while it executes
        try:
            loader_spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - the user's module may raise anything
            sys.modules.pop(name, None)
            raise RecipeError(f"model.import: {spec} failed to import: {type(e).__name__}: {e}") from None
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as e:
        raise RecipeError(f"model.import: cannot import module {spec!r} ({e}; is it on PYTHONPATH?)") from None
    except Exception as e:  # noqa: BLE001 - the user's module may raise anything
        raise RecipeError(f"model.import: module {spec!r} failed to import: {type(e).__name__}: {e}") from None


def resolve(target: str) -> Any:
    """The object named by 'package.module:Name' or 'path/to/file.py:Name' (Name may be dotted)."""
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part or not attr:
        raise RecipeError(f"model.import: expected 'package.module:Name' or 'path/to/file.py:Name', got {target!r}")
    obj = _load_module(module_part)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RecipeError(f"model.import: {module_part!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise RecipeError(f"model.import: {target!r} is not a class or a function")
    return obj


def _sizes(info) -> dict[str, Any]:
    return {"info": info, "input_shape": tuple(info.input_shape), "num_classes": info.num_classes,
            "output_dim": info.output_dim, "vocab_size": info.extra.get("vocab_size")}


def custom(info, import_: Annotated[str, Field(alias="import")], args: dict[str, Any] | None = None,
           init: Init = "default") -> nn.Module:
    """Build the user's model: `import` names the class or factory, `args` its keyword arguments."""
    factory = resolve(import_)
    args = args or {}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    supplied = {k: v for k, v in _sizes(info).items() if k in params and k not in args and v is not None}
    try:
        inspect.signature(factory).bind(**supplied, **args)
    except TypeError as e:
        raise RecipeError(f"model.args: {import_}: {e}") from None
    except ValueError:
        pass  # no signature to check (a builtin): let the call report
    model = factory(**supplied, **args)
    if not isinstance(model, nn.Module):
        raise RecipeError(f"model.import: {import_} returned {type(model).__name__}, not a torch.nn.Module")
    return apply_init(model, init)
