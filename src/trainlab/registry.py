"""One small Registry type for every pluggable kind: name -> factory + one-line description.

A factory's keyword arguments are its recipe options. `Registry.build` validates the options a
recipe gives against the factory's signature (with pydantic), so a mistyped key or value is
reported with its recipe path before anything runs.

An entry may carry frozen metadata (`Registry.add(..., task="classification")` -> `entry.meta`),
which is how the code asks what an entry can do instead of testing its type. A family
(`Registry.add_family`) answers every name matching a pattern (`top3_accuracy`, `top5_accuracy`);
the pattern's named groups are options of its factory, typed by its signature.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import pydantic

from .errors import RecipeError


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Entry:
    """A registered name. `meta` is the entry's frozen metadata; for a family, `pattern` is the regex
    its members match, and a member (what `get` returns for `top3_accuracy`) has `family` set to the
    family's name, `params` to the typed values of the pattern's groups and `factory` bound to them."""

    name: str
    factory: Callable[..., Any]
    description: str
    aliases: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)
    pattern: str | None = None
    family: str | None = None
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)


class Registry:
    """Maps lower-case names (and aliases) to factories.

    `context` names the factory parameters that trainlab supplies itself (e.g. `info`, `params`);
    every other keyword parameter is a recipe option. `required` names the metadata every entry
    must declare (a registration without one is a ValueError).
    """

    def __init__(self, kind: str, plural: str, context: tuple[str, ...] = (), required: tuple[str, ...] = ()):
        self.kind, self.plural, self.context, self.required = kind, plural, context, required
        self._entries: dict[str, Entry] = {}  # in registration order; families too
        self._names: dict[str, str] = {}  # name or alias -> canonical name
        self._families: dict[str, re.Pattern] = {}  # family name -> its compiled pattern
        self._members: dict[str, Entry] = {}  # family members already resolved
        self._option_models: dict[str, type[pydantic.BaseModel]] = {}

    def add(self, name: str, factory: Callable[..., Any], description: str, aliases: tuple[str, ...] = (),
            **meta: Any):
        """Register `factory` under `name` (and `aliases`) with `meta` as its frozen metadata.
        Raises ValueError for an upper-case or already registered name."""
        self._check_new((name, *aliases), meta)
        self._entries[name] = Entry(name, factory, description, tuple(aliases), MappingProxyType(dict(meta)))
        for n in (name, *aliases):
            self._names[n] = name
        return factory

    def add_family(self, name: str, pattern: str, factory: Callable[..., Any], description: str, **meta: Any):
        """Register every name that fully matches `pattern`. `name` is how lists show the family
        (e.g. `top<k>_accuracy`); the pattern's named groups are keyword options of `factory`, typed by
        its signature, and a member's entry has its factory bound to them."""
        self._check_new((name,), meta)
        compiled = re.compile(pattern)
        accepted = set(inspect.signature(factory).parameters)
        if not set(compiled.groupindex) <= accepted:
            raise ValueError(f"{self.kind} family {name!r}: groups {sorted(compiled.groupindex)} are not all "
                             "options of its factory")
        self._entries[name] = Entry(name, factory, description, (), MappingProxyType(dict(meta)), pattern)
        self._families[name] = compiled
        return factory

    def remove(self, name: str) -> Entry:
        """Unregister `name` (an entry with its aliases, or a family); returns its entry. For tests and
        plugins that register something for a while."""
        canonical = self._names.get(name, name)
        entry = self._entries.pop(canonical)
        for n in (canonical, *entry.aliases):
            self._names.pop(n, None)
        self._families.pop(canonical, None)
        self._option_models = {k: m for k, m in self._option_models.items()
                               if k != canonical and not k.startswith(f"{canonical}:")}
        self._members = {k: m for k, m in self._members.items() if m.family != canonical}
        return entry

    def _check_new(self, names: tuple[str, ...], meta: dict[str, Any]) -> None:
        missing = [k for k in self.required if k not in meta]
        if missing:
            raise ValueError(f"{self.kind} {names[0]!r} must declare {', '.join(missing)}")
        for n in names:
            if n != n.lower():
                raise ValueError(f"{self.kind} name {n!r} must be lower-case")
            if n in self._names or n in self._entries:
                raise ValueError(f"{self.kind} {n!r} is already registered")

    def names(self) -> list[str]:
        """Registered names, sorted; a family appears under its shown name (`top<k>_accuracy`)."""
        return sorted(self._entries)

    def entries(self, sort: bool = True) -> list[Entry]:
        """Every entry and family, by name (`sort=False`: in registration order)."""
        return [self._entries[n] for n in self.names()] if sort else list(self._entries.values())

    def __contains__(self, name: str) -> bool:
        return self.find(name) is not None

    def find(self, name: str) -> Entry | None:
        """The entry for `name` (an alias, or a member of a family), or None. Never raises."""
        if name in self._names:
            return self._entries[self._names[name]]
        if not self._families or not isinstance(name, str):
            return None
        if name in self._members:
            return self._members[name]
        for fam, compiled in self._families.items():
            m = compiled.fullmatch(name)
            if m:
                return self._member(self._entries[fam], name, m.groupdict())
        return None

    def _member(self, family: Entry, name: str, groups: dict[str, str]) -> Entry | None:
        try:
            params = self._option_model(family).model_validate(groups)
        except pydantic.ValidationError:
            return None  # the name matches the pattern but a group does not type (e.g. too large)
        typed = {k: getattr(params, k) for k in groups}
        member = Entry(name, functools.partial(family.factory, **typed), family.description, (), family.meta,
                       None, family.name, MappingProxyType(typed))
        self._members[name] = member
        return member

    def get(self, name: str, where: str = "") -> Entry:
        """The entry for `name`; raises RecipeError naming `where`, with close matches."""
        entry = self.find(name)
        if entry is not None:
            return entry
        raise RecipeError(self.unknown(name, where))

    def unknown(self, name: str, where: str = "") -> str:
        """The one-line message for an unknown `name` at recipe path `where`, with close matches."""
        close = difflib.get_close_matches(str(name), list(self._names), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        families = "".join(f", or any {f}" for f in self._families)
        where = f"{where}: " if where else ""
        return f"{where}unknown {self.kind} {name!r}{hint} (see `trainlab list {self.plural}`{families})"

    def options(self, name: str) -> dict[str, inspect.Parameter]:
        """The recipe options of a factory: its keyword parameters minus the context ones (for a
        family, by its shown name: the pattern's groups among them; a member has those bound)."""
        entry = self._entries[name] if name in self._families else self.get(name)
        bound = entry.params if entry.family else {}
        sig = inspect.signature(self._entries[entry.family].factory if entry.family else entry.factory,
                                eval_str=True)
        return {
            k: p for k, p in sig.parameters.items()
            if k not in self.context and k not in bound and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    def option_names(self, name: str) -> list[str]:
        """The recipe keys of a factory's options, as a recipe spells them."""
        return [_recipe_key(p) for p in self.options(name).values()]

    def validate(self, name: str, options: dict[str, Any], where: str) -> dict[str, Any]:
        """Check `options` against the factory's signature; return them typed. Raises RecipeError."""
        entry = self.get(name, f"{where}.name" if where else "")
        model = self._option_model(entry)
        try:
            validated = model.model_validate(options)
        except pydantic.ValidationError as e:
            accepted = ", ".join(sorted(self.option_names(entry.name))) or "none"
            raise RecipeError(format_validation_error(e, prefix=where, accepted=accepted,
                                                      what=f"{self.kind} {entry.name!r}")) from None
        # a recipe key may be a pydantic alias of the parameter (`import` for `import_`)
        param = {f.alias or k: k for k, f in type(validated).model_fields.items()}
        return {param.get(k, k): getattr(validated, param.get(k, k)) for k in options}

    def _option_model(self, entry: Entry) -> type[pydantic.BaseModel]:
        """The pydantic model of a factory's options (a member: its family's, less the bound groups)."""
        key = entry.name if entry.family is None else f"{entry.family}:{','.join(sorted(entry.params))}"
        model = self._option_models.get(key)
        if model is None:
            fields = {}
            for k, p in self.options(entry.name).items():
                ann = p.annotation if p.annotation is not inspect.Parameter.empty else Any
                default = p.default if p.default is not inspect.Parameter.empty else ...
                fields[k] = (ann, default)
            model = pydantic.create_model(
                f"{self.kind}_{entry.name}_options".replace(":", "_").replace(" ", "_"),
                __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                **fields,
            )
            self._option_models[key] = model
        return model

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
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    if kind == "recipe_error":
        return f"{first['msg']}{more}"
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
    return f"{path}: {msg}{more}"
