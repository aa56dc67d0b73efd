"""One small Registry type for every pluggable kind: name -> factory + one-line description.

A factory's keyword arguments are its recipe options. `Registry.build` validates the options a
recipe gives against the factory's signature (with pydantic), so a mistyped key or value is
reported with its recipe path before anything runs.
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import pydantic

from .errors import RecipeError


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    description: str
    aliases: tuple[str, ...] = ()


class Registry:
    """Maps lower-case names (and aliases) to factories.

    `context` names the factory parameters that trainlab supplies itself (e.g. `info`, `params`);
    every other keyword parameter is a recipe option.
    """

    def __init__(self, kind: str, plural: str, context: tuple[str, ...] = ()):
        self.kind, self.plural, self.context = kind, plural, context
        self._entries: dict[str, Entry] = {}
        self._names: dict[str, str] = {}  # name or alias -> canonical name
        self._option_models: dict[str, type[pydantic.BaseModel]] = {}

    def add(self, name: str, factory: Callable[..., Any], description: str, aliases: tuple[str, ...] = ()):
        for n in (name, *aliases):
            if n != n.lower():
                raise ValueError(f"{self.kind} name {n!r} must be lower-case")
            if n in self._names:
                raise ValueError(f"{self.kind} {n!r} is already registered")
        self._entries[name] = Entry(name, factory, description, tuple(aliases))
        for n in (name, *aliases):
            self._names[n] = name
        return factory

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def get(self, name: str, where: str = "") -> Entry:
        if name in self._names:
            return self._entries[self._names[name]]
        close = difflib.get_close_matches(str(name), list(self._names), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        where = f"{where}: " if where else ""
        raise RecipeError(
            f"{where}unknown {self.kind} {name!r}{hint} (see `trainlab list {self.plural}`)"
        )

    def options(self, name: str) -> dict[str, inspect.Parameter]:
        """The recipe options of a factory: its keyword parameters minus the context ones."""
        sig = inspect.signature(self.get(name).factory, eval_str=True)
        return {
            k: p for k, p in sig.parameters.items()
            if k not in self.context and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    def option_names(self, name: str) -> list[str]:
        """The recipe keys of a factory's options, as a recipe spells them."""
        return [_recipe_key(p) for p in self.options(name).values()]

    def validate(self, name: str, options: dict[str, Any], where: str) -> dict[str, Any]:
        """Check `options` against the factory's signature; return them typed. Raises RecipeError."""
        entry = self.get(name, f"{where}.name" if where else "")
        model = self._option_models.get(entry.name)
        if model is None:
            fields = {}
            for k, p in self.options(entry.name).items():
                ann = p.annotation if p.annotation is not inspect.Parameter.empty else Any
                default = p.default if p.default is not inspect.Parameter.empty else ...
                fields[k] = (ann, default)
            model = pydantic.create_model(
                f"{self.kind}_{entry.name}_options".replace(":", "_"),
                __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                **fields,
            )
            self._option_models[entry.name] = model
        try:
            validated = model.model_validate(options)
        except pydantic.ValidationError as e:
            accepted = ", ".join(sorted(self.option_names(entry.name))) or "none"
            raise RecipeError(format_validation_error(e, prefix=where, accepted=accepted,
                                                      what=f"{self.kind} {entry.name!r}")) from None
        # a recipe key may be a pydantic alias of the parameter (`import` for `import_`)
        param = {f.alias or k: k for k, f in type(validated).model_fields.items()}
        return {param.get(k, k): getattr(validated, param.get(k, k)) for k in options}

    def build(self, name: str, options: dict[str, Any], where: str, **context: Any) -> Any:
        """Validate `options` and call the factory with them plus trainlab's `context`."""
        entry = self.get(name, f"{where}.name" if where else "")
        opts = self.validate(entry.name, options, where)
        accepted = inspect.signature(entry.factory).parameters
        ctx = {k: v for k, v in context.items() if k in accepted}
        return entry.factory(**ctx, **opts)


def _recipe_key(p: inspect.Parameter) -> str:
    """How a recipe spells parameter `p`: its pydantic alias when it has one (`import` for a
    parameter that cannot be named after a Python keyword), else its name."""
    for meta in getattr(p.annotation, "__metadata__", ()):
        if getattr(meta, "alias", None):
            return meta.alias
    return p.name


_TYPE_WORDS = {
    "float": "a number", "int": "an integer", "bool": "true or false", "string": "a string",
    "list": "a list", "dict": "a mapping", "literal": "one of",
}


def format_validation_error(e: pydantic.ValidationError, prefix: str = "", accepted: str = "",
                            what: str = "") -> str:
    """One line naming the recipe path of the first problem (and how many more there are)."""
    errs = e.errors()
    first = errs[0]
    loc = [str(p) for p in first["loc"] if not str(p).startswith(("function-", "union["))]
    # pydantic adds the union member type to loc (e.g. 'int', 'float'); drop those
    loc = [p for p in loc if p not in ("int", "float", "str", "bool", "dict[str,any]", "none")]
    path = ".".join([prefix] + loc if prefix else loc) or "recipe"
    kind = first["type"]
    got = first.get("input")
    if kind == "extra_forbidden":
        msg = f"unknown key{' for ' + what if what else ''}"
        if accepted:
            msg += f"; accepted: {accepted}"
    elif kind == "missing":
        msg = "required key is missing"
    elif kind.endswith(("_parsing", "_type")):
        word = next((w for k, w in _TYPE_WORDS.items() if kind.startswith(k)), None)
        msg = f"expected {word}, got {got!r}" if word else f"{first['msg'].lower()}, got {got!r}"
    elif kind == "literal_error":
        msg = f"{first['msg'].lower()}, got {got!r}"
    else:
        msg = f"{first['msg'][0].lower()}{first['msg'][1:]}, got {got!r}"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{path}: {msg}{more}"
