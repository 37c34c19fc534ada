"""Let ``celery -A workers flower --port 5566`` work as written, on loopback unless told otherwise.

Flower hands its arguments to tornado's option parser, which only understands
``--name=value``: ``--port 5566`` fails with "Option 'port' requires a value" (only
``--port=5566`` worked). When the ``celery`` command line loads this app, Flower's command
gets a callback that joins ``--name value`` into ``--name=value`` for Flower's options that
take a value, and passes everything else through unchanged. Flower listens on every address
by default; without ``--address`` or ``FLOWER_ADDRESS`` it gets ``--address=127.0.0.1``.
Nothing happens in processes that are not the ``celery`` command line.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_MARK = "_tablebeat_joins_option_values"


def join_option_values(argv: Sequence[str], takes_value: Callable[[str], bool]) -> tuple[str, ...]:
    """``("--port", "5566", "--debug")`` -> ``("--port=5566", "--debug")`` when ``port`` takes a value."""
    joined: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg[2:]
        if arg.startswith("--") and "=" not in arg and i + 1 < len(args) and takes_value(name):
            joined.append(f"{arg}={args[i + 1]}")
            i += 2
            continue
        joined.append(arg)
        i += 1
    return tuple(joined)


def with_default_address(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, ...]:
    """``argv`` plus ``--address=127.0.0.1`` unless an address is given (flag or ``FLOWER_ADDRESS``)."""
    if environ.get("FLOWER_ADDRESS") is not None or any(a.split("=", 1)[0] == "--address" for a in argv):
        return tuple(argv)
    return (*argv, "--address=127.0.0.1")


def _flower_takes_value(name: str) -> bool:
    from tornado.options import options

    # tornado keeps its option table private; Flower's options are only reachable there.
    option = options._options.get(name.replace("_", "-")) or options._options.get(name)
    # Booleans are flags (--debug); tornado reads a following word as the next argument.
    return option is not None and option.type is not bool


def install() -> bool:
    """Wrap Flower's ``celery flower`` callback, once; True if Flower's command is there."""
    cli = sys.modules.get("celery.bin.celery")
    command = getattr(getattr(cli, "celery", None), "commands", {}).get("flower")
    if command is None or command.callback is None:
        return False
    if getattr(command.callback, _MARK, False):
        return True
    import flower.options  # noqa: F401  (defines Flower's options, as the command does)

    original = command.callback

    @functools.wraps(original)
    def callback(*args: Any, tornado_argv: Sequence[str] = (), **kwargs: Any) -> Any:
        joined = join_option_values(tornado_argv, _flower_takes_value)
        return original(*args, tornado_argv=with_default_address(joined, os.environ), **kwargs)

    setattr(callback, _MARK, True)
    command.callback = callback
    return True


install()
