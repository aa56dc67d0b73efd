"""The `trainlab` command: builds the parser from the registered commands (trainlab.commands), runs the
one asked for, and turns every error into one line and an exit status (the CLI edge)."""
from __future__ import annotations

import argparse
import sys
import traceback

from .commands import COMMANDS, Commands
from .commands._console import console  # noqa: F401 - the console every command prints through
from .errors import TrainlabError
from .redact import redact


def build_parser(commands: Commands = COMMANDS) -> argparse.ArgumentParser:
    """The `trainlab` parser: one subcommand per registered command, with that command's arguments."""
    p = argparse.ArgumentParser(prog="trainlab", description="A deep-learning training and optimization lab.")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error (anywhere on the line)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for c in commands:
        c.add_arguments(sub.add_parser(c.name, help=c.help))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere, so every subcommand has it
    parser = build_parser()
    args = parser.parse_args([a for a in argv if a != "--debug"])
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS.get(args.command).run(args)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - the CLI edge: every error becomes one line and a status
        return report_error(e, debug)


def exit_status(e: BaseException) -> tuple[int, str]:
    """The exit status and the one line for an error: 2 for what the user can fix, 1 for a bug in trainlab."""
    import errno

    # an error can only be of a class whose module was imported: asking sys.modules instead of importing
    # keeps an error raised before training (a missing recipe file) from importing torch (~1.5 s)
    signals, torch = sys.modules.get("trainlab.train.signals"), sys.modules.get("torch")
    if signals is not None and isinstance(e, signals.TrainingInterrupted):
        where = getattr(e, "run_dir", None)
        return e.exit_code, f"{e}" + (f"; resume with: trainlab train --resume {where}" if where else "")
    if isinstance(e, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(e, TrainlabError):
        return 2, f"error: {e}"  # the message names the recipe key or the file
    if isinstance(e, MemoryError) or (torch is not None and isinstance(e, torch.OutOfMemoryError)):
        return 2, ("error: out of memory; lower data.batch_size or data.eval_batch_size, use a smaller model, "
                   "or set train.device: cpu")
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return 2, f"error: disk full{where}; free some space (completed checkpoints are intact)"
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return 2, f"error: permission denied{where}; choose a writable output.root or --run-dir"
        return 2, f"error: {e.strerror or e}{where}"
    first = (str(e).splitlines() or [""])[0]
    return 1, f"internal error: {type(e).__name__}: {first} (run again with --debug for the traceback)"


def report_error(e: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exception(e)
    code, line = exit_status(e)
    # plain print, so markup in a name shows as written; control characters (a file name may hold
    # an escape sequence: a hyperlink, a cleared screen) are shown as \x.. instead of obeyed
    print(f"trainlab: {printable(redact(line))}", file=sys.stderr)  # a URL's password is never shown
    return code


def printable(text: str) -> str:
    """`text` with C0 (but tab and newline) and C1 control characters, and DEL, written as \\xNN."""
    return "".join(f"\\x{ord(c):02x}" if (ord(c) < 32 and c not in "\t\n") or 127 <= ord(c) < 160 else c
                   for c in text)


if __name__ == "__main__":
    sys.exit(main())
