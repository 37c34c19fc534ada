"""The connection of the worker's two writes of every run, held between runs that follow each other.

A pool checkout and checkin cost about 20 µs of CPU each in a busy pool child (T6), twice a run.
Runs that follow each other within :data:`HOLD_SECONDS` share one checkout instead; a connection
held longer goes back to the pool before its next use, so the pool's rules (``pool_recycle``,
disposal after an outage) still apply to it at least that often.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

#: The longest a connection stays checked out for reuse.
HOLD_SECONDS = 1.0


class HeldConnection:
    """One pooled raw DB-API connection per thread, reused for up to :data:`HOLD_SECONDS`."""

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine
        self._local = threading.local()
        #: Connections inherited from the parent process: kept referenced, so that collecting them
        #: never closes (or resets) a socket the parent still uses.
        self._inherited: list[Any] = []

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A raw connection (``Engine.raw_connection``); after an error it goes back to the pool."""
        local = self._local
        raw, since = getattr(local, "held", (None, 0.0))
        local.held = (None, 0.0)  # not handed out twice: a nested use gets a connection of its own
        if raw is not None and time.monotonic() - since > HOLD_SECONDS:
            raw.close()
            raw = None
        if raw is None:
            raw, since = self._engine().raw_connection(), time.monotonic()
        try:
            yield raw
        except BaseException:
            raw.close()  # an invalidated connection is discarded by the pool
            raise
        local.held = (raw, since)

    def release(self) -> None:
        """Return this thread's connection to the pool (the next use checks one out)."""
        raw, _ = getattr(self._local, "held", (None, 0.0))
        self._local.held = (None, 0.0)
        if raw is not None:
            raw.close()

    def forget_after_fork(self) -> None:
        """Drop, without touching, the connection the parent held (its socket is the parent's)."""
        raw, _ = getattr(self._local, "held", (None, 0.0))
        if raw is not None:
            self._inherited.append(raw)
        self._local = threading.local()
