"""commands/: the registry the `trainlab` parser is built from, and the catalogue `trainlab list` reads."""
from __future__ import annotations

import argparse

import pytest

from trainlab import catalog
from trainlab.cli import build_parser, main
from trainlab.commands import COMMANDS, Command
from trainlab.registry import Registry

BUILTINS = ["init", "train", "evaluate", "report", "runs", "lr-find", "summary", "tune", "list", "reference", "data",
            "compare", "export", "predict", "serve", "compress"]
WIDGETS = Registry("widget", "widgets")
WIDGETS.add("gear", lambda teeth=12: None, "a toothed wheel")


@pytest.fixture
def hello():
    """A throw-away `trainlab hello` command, registered for one test and removed after it."""
    seen = []

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("who", help="whom to greet")
        p.add_argument("--times", type=int, default=1, help="how often")

    def run(args) -> int:
        seen.append(args)
        print(" ".join([f"hello {args.who}"] * args.times))
        return 7

    COMMANDS.add(Command("hello", "greet someone (a test command)", add_arguments, run))
    yield seen
    COMMANDS.remove("hello")


def test_builtin_commands_are_registered_in_help_order():
    assert COMMANDS.names() == BUILTINS


def test_a_registered_command_shows_in_help_and_runs_with_its_own_arguments(hello, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "hello" in out and "greet someone (a test command)" in out
    assert main(["hello", "world", "--times", "2"]) == 7
    assert capsys.readouterr().out == "hello world hello world\n"
    assert hello[0].who == "world" and hello[0].times == 2 and hello[0].command == "hello"


def test_a_removed_command_is_gone_again(hello, capsys):
    COMMANDS.remove("hello")
    try:
        assert "hello" not in COMMANDS and COMMANDS.names() == BUILTINS
        with pytest.raises(SystemExit) as e:
            main(["hello", "world"])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "invalid choice" in err and "hello" in err
    finally:
        COMMANDS.add(Command("hello", "again", lambda p: None, lambda a: 0))  # for the fixture to remove


def test_a_command_name_is_taken_once_and_lower_case(hello):
    with pytest.raises(ValueError, match="already registered"):
        COMMANDS.add(Command("hello", "twice", lambda p: None, lambda a: 0))
    with pytest.raises(ValueError, match="lower-case"):
        COMMANDS.add(Command("Shout", "upper", lambda p: None, lambda a: 0))
    assert "shout" not in COMMANDS


def _list_choices() -> list[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    kind = next(a for a in sub.choices["list"]._actions if a.dest == "kind")
    return list(kind.choices)


def test_list_kinds_are_the_catalogue_keys(capsys):
    kinds = ["sources", "models", "losses", "optimizers", "schedules", "augments", "preprocess", "metrics", "trackers"]
    assert catalog.kinds() == list(catalog.registries()) == kinds
    assert _list_choices() == kinds
    assert main(["list"]) == 0
    titles = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip() in kinds]
    assert titles == kinds


def test_a_kind_added_to_the_catalogue_shows_in_list_with_no_other_edit(monkeypatch, capsys):
    monkeypatch.setitem(catalog.CATALOG, "widgets", (__name__, "WIDGETS"))
    assert _list_choices()[-1] == "widgets"
    assert main(["list", "widgets"]) == 0
    out = capsys.readouterr().out
    assert "widgets" in out and "gear" in out and "a toothed wheel" in out and "teeth" in out
    from trainlab.docgen import reference

    assert "| `gear` | a toothed wheel | `teeth=12` |" in reference()
