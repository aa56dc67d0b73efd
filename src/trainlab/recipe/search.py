"""Search spaces: recipe paths mapped to distributions, validated like the rest of the recipe.

```yaml
search:
  optim.lr: {loguniform: [1.0e-4, 1.0e-1]}
  optim.weight_decay: {uniform: [0.0, 0.1], step: 0.01}
  data.batch_size: {choice: [64, 128, 256]}
  model.widths: {choice: [[256], [512], [512, 256]]}
  train.epochs: {int: [1, 4]}
  optim.name: {choice: [sgd, adamw]}
  optim.momentum: {uniform: [0.8, 0.99], when: {optim.name: sgd}}
```

Every key must be a path of the recipe schema (a section field, or an option of some registry
entry of that section); every value the distribution can produce must make a valid recipe
(checked by building the recipe at the ends of each range and at every choice: `parse_space` in
recipe/load.py, which parses recipes).
"""
from __future__ import annotations

import difflib
import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..data import SOURCES
from ..errors import RecipeError
from ..losses import LOSSES
from ..models import MODELS
from ..optim import OPTIMIZERS, SCHEDULES
from .schema import Component, Recipe

KINDS = ("uniform", "loguniform", "int", "choice")
MODIFIERS = ("step", "log", "when")
_MISSING = object()
# recipe sections whose extra keys are options of a registry entry, and the key naming the entry
COMPONENT_KEY = {"data": "source", "model": "name", "loss": "name", "optim": "name", "schedule": "name"}


@dataclass(frozen=True)
class Param:
    """One searched recipe path and its distribution."""

    path: str
    kind: str                        # uniform | loguniform | int | choice
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()
    when: dict[str, tuple] = field(default_factory=dict)  # path -> allowed values

    # --- choices: Optuna stores only None/bool/int/float/str, so lists are stored as JSON text
    @property
    def encoded(self) -> tuple:
        if all(c is None or isinstance(c, (bool, int, float, str)) for c in self.choices):
            return self.choices
        return tuple(json.dumps(c) for c in self.choices)

    def decode(self, value: Any) -> Any:
        return self.choices[self.encoded.index(value)] if self.kind == "choice" else value

    def encode(self, value: Any) -> Any:
        return self.encoded[self.choices.index(value)] if self.kind == "choice" else value

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(self.encoded)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.kind == "loguniform", step=self.step)

    def suggest(self, trial) -> Any:
        """Ask the Optuna trial for a value (decoded back to the recipe's value)."""
        if self.kind == "choice":
            return self.decode(trial.suggest_categorical(self.path, self.encoded))
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.path, float(self.low), float(self.high), step=self.step,
                                   log=self.kind == "loguniform")

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and value != int(value):
            return False
        if not self.low <= value <= self.high:
            return False
        return not self.step or math.isclose(round((value - self.low) / self.step) * self.step, value - self.low,
                                             abs_tol=1e-9)

    def grid_values(self) -> list:
        """Every value, for the grid sampler; a continuous range has none."""
        if self.kind == "choice":
            return list(self.encoded)
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.kind == "uniform" and self.step:
            n = math.floor((self.high - self.low) / self.step + 1e-9)
            return [round(self.low + i * self.step, 12) for i in range(n + 1)]
        raise RecipeError(f"search.{self.path}: --sampler grid needs a choice list or a range with a step "
                          f"(this one is continuous)")

    def probe_values(self) -> list:
        """The values checked against the recipe schema: both ends of a range, every choice."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {self.kind: list(self.choices) if self.kind == "choice" else [self.low, self.high]}
        if self.step:
            d["step"] = self.step
        if self.log:
            d["log"] = True
        if self.when:
            d["when"] = {k: list(v) if len(v) > 1 else v[0] for k, v in self.when.items()}
        return d


@dataclass
class SearchSpace:
    params: list[Param]   # in sampling order: a parameter comes after those its `when` names

    def names(self) -> list[str]:
        return [p.path for p in self.params]

    def get(self, path: str) -> Param | None:
        return next((p for p in self.params if p.path == path), None)

    def active(self, p: Param, values: dict[str, Any], base: dict) -> bool:
        return all(_lookup(values, base, k) in allowed for k, allowed in p.when.items())

    def sample(self, trial, base: dict) -> dict[str, Any]:
        """Suggest every active parameter from the trial; returns {recipe path: value}."""
        values: dict[str, Any] = {}
        for p in self.params:
            if self.active(p, values, base):
                values[p.path] = p.suggest(trial)
        return values

    def baseline(self, base: dict) -> tuple[dict[str, Any] | None, str]:
        """The base recipe's own values as Optuna params (to enqueue as trial 0), or None and why."""
        params: dict[str, Any] = {}
        for p in self.params:
            if not self.active(p, {}, base):
                continue
            v = recipe_value(base, p.path)
            if v is _MISSING:
                return None, f"the recipe sets no value for {p.path}"
            if not p.contains(v):
                return None, f"the recipe's {p.path} = {v!r} lies outside the search space"
            params[p.path] = p.encode(v)
        return params, ""

    def grid(self) -> dict[str, list]:
        conditional = [p.path for p in self.params if p.when]
        if conditional:
            raise RecipeError(f"search.{conditional[0]}: --sampler grid does not support conditional "
                              f"parameters (`when:`); use tpe or random")
        return {p.path: p.grid_values() for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        return {p.path: p.to_dict() for p in self.params}


# --- recipe paths ----------------------------------------------------------------------------------
def get_path(d: dict, path: str) -> Any:
    node: Any = d
    for k in path.split("."):
        if not isinstance(node, dict) or k not in node:
            return _MISSING
        node = node[k]
    return node


def set_path(d: dict, path: str, value: Any) -> None:
    keys = path.split(".")
    node = d
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def recipe_value(base: dict, path: str) -> Any:
    """The value at `path` in the recipe, or the registry entry's default for an option it omits."""
    v = get_path(base, path)
    parts = path.split(".")
    if v is _MISSING and len(parts) == 2 and parts[0] in COMPONENT_KEY:
        name = get_path(base, f"{parts[0]}.{COMPONENT_KEY[parts[0]]}")
        reg = _registry(parts[0])
        if isinstance(name, str) and name in reg:
            opt = reg.options(name).get(parts[1])
            if opt is not None and opt.default is not inspect.Parameter.empty:
                return opt.default
    return v


def _lookup(values: dict, base: dict, path: str) -> Any:
    return values[path] if path in values else recipe_value(base, path)


def _section_model(annotation):
    for a in getattr(annotation, "__args__", (annotation,)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _registry(section: str):
    return {"data": SOURCES, "model": MODELS, "loss": LOSSES, "optim": OPTIMIZERS, "schedule": SCHEDULES}[section]


def check_path(path: str, label: str | None = None) -> None:
    """Raise RecipeError unless `path` names a field of the recipe schema or a registry option.

    `label` is how the error names the place (default `search.<path>`)."""
    label = label or f"search.{path}"

    def fail(known: list[str], prefix: str, bad: str):
        close = difflib.get_close_matches(bad, known, n=1, cutoff=0.6)
        hint = f"; did you mean {prefix}{close[0]}?" if close else ""
        raise RecipeError(f"{label}: not a recipe path{hint} (known under "
                          f"{prefix.rstrip('.') or 'the recipe'}: {', '.join(sorted(known))})")

    parts = path.split(".")
    if any(not p for p in parts):
        raise RecipeError(f"{label}: not a recipe path (empty part)")
    top = {k: f for k, f in Recipe.model_fields.items() if k != "search"}
    if parts[0] not in top:
        fail(list(top), "", parts[0])
    model = _section_model(top[parts[0]].annotation)
    if model is None:
        if len(parts) > 1:
            raise RecipeError(f"{label}: not a recipe path ({parts[0]} is a single value)")
        return
    if len(parts) == 1:
        raise RecipeError(f"{label}: name a field of the section, e.g. {parts[0]}."
                          f"{next(iter(model.model_fields))}")
    known = set(model.model_fields)
    if issubclass(model, Component):
        reg = _registry(parts[0])
        for name in reg.names():
            known |= set(reg.options(name))
    if parts[1] not in known:
        fail(sorted(known), parts[0] + ".", parts[1])
    fld = model.model_fields.get(parts[1])
    is_mapping = fld is not None and "dict" in str(fld.annotation)
    if len(parts) > 2 and not (is_mapping and len(parts) == 3):
        raise RecipeError(f"{label}: not a recipe path ({parts[0]}.{parts[1]} has no sub-keys)")


# --- parsing ------------------------------------------------------------------------------------------
def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _parse_range(kind: str, spec: dict, at: str) -> tuple[Any, Any]:
    rng = spec[kind]
    if not (isinstance(rng, list) and len(rng) == 2 and all(_number(x) for x in rng)):
        raise RecipeError(f"{at}: {kind} takes [low, high] numbers, got {rng!r}")
    low, high = rng
    if kind == "int" and not all(isinstance(x, int) for x in rng):
        raise RecipeError(f"{at}: int takes [low, high] integers, got {rng!r}")
    if not low < high:
        raise RecipeError(f"{at}: low must be below high, got {rng!r}")
    if kind == "loguniform" and low <= 0:
        raise RecipeError(f"{at}: loguniform needs low > 0, got {low!r}")
    return low, high


def parse_param(path: str, spec: Any, where: str = "search") -> Param:
    at = f"{where}.{path}"
    if not isinstance(spec, dict):
        raise RecipeError(f"{at}: expected a distribution like {{loguniform: [1.0e-4, 1.0e-1]}} or "
                          f"{{choice: [64, 128]}}, got {spec!r}")
    unknown = [k for k in spec if k not in KINDS + MODIFIERS]
    if unknown:
        raise RecipeError(f"{at}: unknown key {unknown[0]!r}; accepted: {', '.join(KINDS + MODIFIERS)}")
    kinds = [k for k in spec if k in KINDS]
    if len(kinds) != 1:
        raise RecipeError(f"{at}: give exactly one of {', '.join(KINDS)}, got {kinds or 'none'}")
    kind = kinds[0]
    step, log = spec.get("step"), spec.get("log", False)
    if not isinstance(log, bool):
        raise RecipeError(f"{at}.log: expected true or false, got {log!r}")
    when = _parse_when(spec.get("when"), path, at, where)
    if kind == "choice":
        choices = spec["choice"]
        if not isinstance(choices, list) or not choices:
            raise RecipeError(f"{at}: choice takes a non-empty list, got {choices!r}")
        if len({json.dumps(c, sort_keys=True) for c in choices}) != len(choices):
            raise RecipeError(f"{at}: choice lists a value twice: {choices!r}")
        if "step" in spec or log:
            raise RecipeError(f"{at}: step and log apply to ranges, not to choice")
        return Param(path, kind, choices=tuple(choices), when=when)
    low, high = _parse_range(kind, spec, at)
    if kind == "loguniform" and ("step" in spec or "log" in spec):
        raise RecipeError(f"{at}: loguniform takes no step or log (it is already logarithmic)")
    if kind == "uniform" and log:
        raise RecipeError(f"{at}: use loguniform for a logarithmic float range")
    if step is not None:
        if not _number(step) or step <= 0 or (kind == "int" and not isinstance(step, int)):
            raise RecipeError(f"{at}.step: expected a positive {'integer' if kind == 'int' else 'number'}, got {step!r}")
        if step > high - low:
            raise RecipeError(f"{at}.step: {step!r} is larger than the range {[low, high]!r}")
    if kind == "int" and log:
        if step not in (None, 1):
            raise RecipeError(f"{at}: an int range cannot have both log: true and a step")
        if low < 1:
            raise RecipeError(f"{at}: a log int range needs low >= 1, got {low!r}")
    return Param(path, kind, low, high, step, log, when=when)


def _parse_when(when: Any, path: str, at: str, where: str) -> dict[str, tuple]:
    if when is None:
        return {}
    if not isinstance(when, dict) or not when:
        raise RecipeError(f"{at}.when: expected a mapping like {{optim.name: sgd}}, got {when!r}")
    out = {}
    for k, v in when.items():
        k = str(k)
        if k == path:
            raise RecipeError(f"{at}.when: a parameter cannot depend on itself")
        check_path(k, f"{at}.when.{k}")
        out[k] = tuple(v) if isinstance(v, list) else (v,)
    return out


def order_params(params: dict[str, Param], where: str) -> list[Param]:
    """Parameters after those their `when` names (declaration order otherwise)."""
    done: list[Param] = []
    visiting: set[str] = set()

    def visit(p: Param):
        if p in done:
            return
        if p.path in visiting:
            raise RecipeError(f"{where}.{p.path}.when: conditions form a cycle")
        visiting.add(p.path)
        for dep in p.when:
            if dep in params:
                visit(params[dep])
        visiting.discard(p.path)
        done.append(p)

    for p in params.values():
        visit(p)
    return done
