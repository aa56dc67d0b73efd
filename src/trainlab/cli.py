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


def run() -> None:
    """The `trainlab` program (console script and `python -m trainlab`): `main`, then exit without
    Python's interpreter teardown.

    Tearing down torch, torch._dynamo, torchmetrics/scipy and matplotlib module by module costs
    0.6-1.3 s after the work is done (measured in benchmarks/results-issue18-process.md). Every file
    trainlab writes is complete by then (atomic writes, closed logs), so once the output streams are
    flushed and the atexit handlers have run, the process ends with `os._exit`. It exits the normal
    way instead when that could lose something: a non-daemon thread still running, a profiler or
    tracer (cProfile, coverage, a debugger) attached, or TRAINLAB_FAST_EXIT=0."""
    try:
        code = main()
    except SystemExit as e:  # argparse: --help, usage errors
        code = e.code
    code = code if isinstance(code, int) else (0 if code is None else 1)
    if not _fast_exit_safe():
        sys.exit(code)
    import atexit
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    atexit._run_exitfuncs()  # what the normal exit would run (TensorBoard writers, logging, ...)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


def _fast_exit_safe() -> bool:
    import os
    import threading

    if os.environ.get("TRAINLAB_FAST_EXIT", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return False
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    return not any(t.is_alive() for t in others)


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
    run()
