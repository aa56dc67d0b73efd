"""Reading a recipe: YAML, `--set` overrides, the schema, then every component's options checked
against its registry entry and the search space against the schema. Raises RecipeError naming
the recipe path of the first problem."""
from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel

from ..data import SOURCES
from ..data.augment import parse_augment
from ..data.preprocess import parse_preprocess
from ..errors import RecipeError
from ..losses import LOSSES
from ..metrics import monitor_problem
from ..models import MODELS
from ..optim import OPTIMIZERS, SCHEDULES
from ..registry import format_validation_error
from ..track.trackers import check_trackers
from .schema import Recipe
from .search import COMPONENT_KEY, Param, SearchSpace, check_path, parse_param, order_params, set_path


def check_recipe(recipe: Recipe) -> Recipe:
    """Validate every component's options against its registry entry, `data.augment`, and the
    search space (paths, distributions and every value they reach). Raises RecipeError."""
    for where, reg, section in (("data", SOURCES, recipe.data), ("model", MODELS, recipe.model),
                                ("optim", OPTIMIZERS, recipe.optim), ("schedule", SCHEDULES, recipe.schedule)):
        name = section.source if where == "data" else section.name
        entry = reg.get(name, f"{where}.{'source' if where == 'data' else 'name'}")
        try:
            reg.validate(entry.name, section.options(), where)
        except RecipeError as e:
            # name the section's own keys too among the accepted ones
            own = [k for k in type(section).model_fields if k not in ("name", "source")]
            msg = str(e)
            if "accepted:" in msg and own:
                msg = msg.replace("accepted: ", "accepted: " + ", ".join(own) + ", ", 1)
            raise RecipeError(msg) from None

    parse_preprocess(recipe.data.preprocess)  # names and options of data.preprocess
    parse_augment(recipe.data.augment)  # names and options of data.augment
    if recipe.loss.name != "auto":
        entry = LOSSES.get(recipe.loss.name, "loss.name")
        LOSSES.validate(entry.name, recipe.loss.options(), "loss")
    check_trackers(recipe.output.trackers)  # output.trackers names registered trackers
    if recipe.search is not None:
        parse_space(recipe.search, recipe.to_dict())
    return recipe


def monitors(recipe: Recipe) -> dict[str, str]:
    """The monitors a recipe names (recipe key -> metric): `train.monitor` unless `auto`,
    `early_stopping.monitor` when it stops early, and the schedule's `monitor` option
    (reduce_on_plateau's default `val.loss` when the recipe leaves it out)."""
    out = {}
    if recipe.train.monitor != "auto":
        out["train.monitor"] = recipe.train.monitor
    if recipe.early_stopping is not None:
        out["early_stopping.monitor"] = recipe.early_stopping.monitor
    option = SCHEDULES.options(SCHEDULES.get(recipe.schedule.name, "schedule.name").name).get("monitor")
    if option is not None:
        value = recipe.schedule.options().get("monitor", option.default)
        if isinstance(value, str):
            out["schedule.monitor"] = value
    return out


def check_monitor_names(recipe: Recipe) -> None:
    """Every monitor the recipe names is a metric trainlab can log (whatever the data): the Trainer
    asks this before it loads any data, so a typo is found at once, not after the first epoch.
    Not part of `check_recipe`: a finished run whose recipe has such a typo still loads. Raises
    RecipeError naming the key."""
    for key, value in monitors(recipe).items():
        why = monitor_problem(value)
        if why:
            raise RecipeError(f"{key}: {why}")


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """Apply `a.b=c` overrides; values are parsed as YAML (so the schema types them)."""
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        if "=" not in item:
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise RecipeError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        set_path(raw, key, value)
    return raw


def read_text(path: Path) -> str:
    """A recipe file's text; RecipeError naming the first byte that is not UTF-8 (and its line)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise RecipeError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}, "
                          f"line {line}); save the recipe as UTF-8") from None


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{p}: recipe file not found")
    try:
        raw = yaml.safe_load(read_text(p))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise RecipeError(f"{p}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{p}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    return raw


def parse_recipe(raw: dict, source: str = "recipe") -> Recipe:
    try:
        recipe = Recipe.model_validate(raw)
    except pydantic.ValidationError as e:
        accepted = ""
        if e.errors()[0]["type"] == "extra_forbidden":
            loc = e.errors()[0]["loc"]
            model: type[BaseModel] = Recipe
            for part in loc[:-1]:
                field = model.model_fields.get(str(part))
                ann = getattr(field, "annotation", None)
                model = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)
                              and issubclass(a, BaseModel)), model)
            accepted = ", ".join(model.model_fields)
        raise RecipeError(format_validation_error(e, accepted=accepted)) from None
    return check_recipe(recipe)


def load_recipe(source: str | Path | dict | Recipe, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe. Raises RecipeError with the path of the bad key."""
    if isinstance(source, Recipe):
        raw = source.to_dict()
    elif isinstance(source, dict):
        raw = source
    else:
        raw = read_yaml(source)
    return parse_recipe(apply_overrides(raw, overrides))


def parse_space(raw: Any, base: dict | None = None, where: str = "search", probe: bool = True) -> SearchSpace:
    """Parse and validate a search space. `base` is the recipe (as a dict) the values go into.

    With `probe`, every end of a range and every choice is set into the base recipe (under each
    optimizer/model/... name it may meet) and validated by the recipe schema. Raises RecipeError.
    """
    if not isinstance(raw, dict) or not raw:
        raise RecipeError(f"{where}: expected a mapping of recipe paths to distributions, got {raw!r}")
    params: dict[str, Param] = {}
    for path, spec in raw.items():
        path = str(path)
        check_path(path, f"{where}.{path}")
        params[path] = parse_param(path, spec, where)
    space = SearchSpace(order_params(params, where))
    if probe and base is not None:
        for p in space.params:
            _probe(space, p, base, where)
    return space


def _contexts(space: SearchSpace, p: Param) -> list[dict[str, Any]]:
    """The settings a value of `p` must be valid under: its conditions, and every searched entry
    name of its section (an option of sgd must not be set while adamw is sampled)."""
    options = {k: list(v) for k, v in p.when.items()}
    section = p.path.split(".")[0]
    if section in COMPONENT_KEY:
        key = f"{section}.{COMPONENT_KEY[section]}"
        namer = space.get(key)
        if key != p.path and key not in options and namer is not None and namer.kind == "choice":
            options[key] = list(namer.choices)
    keys = list(options)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(options[k] for k in keys))]


def _probe(space: SearchSpace, p: Param, base: dict, where: str) -> None:
    for ctx in _contexts(space, p):
        for v in p.probe_values():
            raw = copy.deepcopy(base)
            raw.pop("search", None)
            for k, cv in ctx.items():
                set_path(raw, k, cv)
            set_path(raw, p.path, v)
            try:
                parse_recipe(raw)
            except RecipeError as e:
                with_ctx = f" with {', '.join(f'{k}={cv}' for k, cv in ctx.items())}" if ctx else ""
                hint = ""
                if "unknown key" in str(e) and not p.when and ctx:
                    k0 = next(iter(ctx))
                    hint = f" (add `when: {{{k0}: ...}}` to search only where it applies)"
                raise RecipeError(f"{where}.{p.path}: value {v!r}{with_ctx} makes an invalid recipe: {e}{hint}") from None
