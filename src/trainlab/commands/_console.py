"""The one rich Console every command prints through."""
from __future__ import annotations

from rich.console import Console

console = Console()
if not console.is_terminal:  # logs and pipes: one line per message, never wrapped at 80 columns
    console.soft_wrap = True


def wide_console(width: int) -> Console:
    """`console` on a terminal; for a pipe or a log, a console at least `width` columns wide, so a wide
    table is not cut to rich's default of 80 columns."""
    return console if console.is_terminal else Console(width=max(console.width, width))
