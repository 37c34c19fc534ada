"""Stop signals wait while beat publishes.

Celery's beat stops on SIGTERM/SIGINT by raising ``SystemExit`` from its signal handler, wherever
the main thread is. Between a batch's push to the broker and the commit of its ``published_at``
that left runs already in the broker looking unpublished; a beat stopping cleanly hands its
unpublished claims to the others at once, which published them again (50 duplicate messages in a
three-beat run whose beats were stopped as they fired). While a :meth:`StopGuard.holding` block
runs, a stop signal is held and delivered to Celery's handler when the block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopGuard:
    """Wraps the process's SIGTERM/SIGINT handlers so they wait for the end of a holding block."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending: tuple[int, FrameType | None] | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], Any]] = {}

    def install(self) -> None:
        """Wrap the current handlers (main thread only; a default or ignored signal is left alone)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in _STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if callable(previous) and previous != self._handle:
                self._previous[signum] = previous
                signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        """Put back the handlers :meth:`install` wrapped, if nothing replaced ours meanwhile."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._depth:
            self._pending = (signum, frame)
            return
        self._previous[signum](signum, frame)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """A stop signal arriving inside the block is delivered when it ends."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending is not None:
                signum, frame = self._pending
                self._pending = None
                self._previous[signum](signum, frame)
