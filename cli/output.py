"""Where the CLI prints: Rich consoles that wrap for a terminal only.

Piped or redirected output keeps every value on one line (a trace ID split over five
lines cannot be grepped), so a console that is not a terminal gets an unbounded width.
"""

from __future__ import annotations

from rich.console import Console

#: Width given to a console that is not a terminal: wide enough that nothing wraps.
UNWRAPPED_WIDTH = 100_000


def console(*, stderr: bool = False) -> Console:
    """A console for stdout (or stderr), built per call so the streams of the moment apply."""
    found = Console(stderr=stderr, highlight=False)
    if found.is_terminal:
        return found
    return Console(stderr=stderr, highlight=False, width=UNWRAPPED_WIDTH, soft_wrap=True)
