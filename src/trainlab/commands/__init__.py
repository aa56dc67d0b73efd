"""The `trainlab` commands: one module per command, each with NAME, HELP, `add_arguments(parser)` and
`run(args) -> int`. cli.py builds the parser from COMMANDS and dispatches to it.

A new command is a module here plus one `COMMANDS.add_module(...)` line below. Command modules import
only argparse and the console at the top: `trainlab --help` imports every one of them, so whatever a
command needs to run is imported inside its `run`.
"""
from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import Callable, Iterator


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class Commands:
    """The registered commands, in the order `trainlab --help` lists them."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def add(self, command: Command) -> Command:
        """Register `command`; a name that is not lower-case or is already taken is a ValueError."""
        if command.name != command.name.lower():
            raise ValueError(f"command name {command.name!r} must be lower-case")
        if command.name in self._commands:
            raise ValueError(f"command {command.name!r} is already registered")
        self._commands[command.name] = command
        return command

    def add_module(self, module: str) -> Command:
        """Register the command defined by module `trainlab.commands.<module>` (NAME, HELP,
        add_arguments, run)."""
        m = importlib.import_module(f"{__name__}.{module}")
        return self.add(Command(m.NAME, m.HELP, m.add_arguments, m.run))

    def remove(self, name: str) -> None:
        del self._commands[name]

    def get(self, name: str) -> Command:
        return self._commands[name]

    def names(self) -> list[str]:
        return list(self._commands)

    def __contains__(self, name: str) -> bool:
        return name in self._commands

    def __iter__(self) -> Iterator[Command]:
        return iter(list(self._commands.values()))


COMMANDS = Commands()
COMMANDS.add_module("init")
COMMANDS.add_module("train")
COMMANDS.add_module("evaluate")
COMMANDS.add_module("report")
COMMANDS.add_module("runs")
COMMANDS.add_module("lr_find")
COMMANDS.add_module("summary")
COMMANDS.add_module("tune")
COMMANDS.add_module("list_")
COMMANDS.add_module("reference")
COMMANDS.add_module("data")
COMMANDS.add_module("compare")
COMMANDS.add_module("export")
COMMANDS.add_module("predict")
COMMANDS.add_module("serve")
COMMANDS.add_module("compress")
