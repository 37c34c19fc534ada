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
    """At most one pooled raw DB-API connection per process kept between uses, for up to :data:`HOLD_SECONDS`.

    One, not one per thread: a thread pool (``-P threads``) of more threads than the pool holds
    connections would otherwise keep them all checked out while idle.
    """

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._held: tuple[Any, float] | None = None
        #: Connections inherited from the parent process: kept referenced, so that collecting them
        #: never closes (or resets) a socket the parent still uses.
        self._inherited: list[Any] = []

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A raw connection (``Engine.raw_connection``) for this caller alone; after an error it goes
        back to the pool."""
        with self._lock:
            held, self._held = self._held, None
        raw, since = held if held is not None else (None, 0.0)
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
        with self._lock:
            kept = self._held is None  # else another caller's connection is held already
            if kept:
                self._held = (raw, since)
        if not kept:
            raw.close()

    def release(self) -> None:
        """Return the held connection to the pool (the next use checks one out)."""
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            held[0].close()

    def forget_after_fork(self) -> None:
        """Drop, without touching, the connection the parent held (its socket is the parent's)."""
        if self._held is not None:
            self._inherited.append(self._held[0])
        self._held = None
        self._lock = threading.Lock()  # a parent's thread may have held it at the fork
