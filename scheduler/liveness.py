"""Beat liveness: a thread that stamps ``beat_node`` so other beats know this one is alive.

The scheduler loop stamps in its change-log poll (one transaction for both); a thread stamps
when the loop has not for a stamp interval, so a long tick (a 100,000-fire burst) does not look
like a dead beat.  A frozen or killed process stops stamping and its claims are taken over.  A gap
between two stamps longer than half the dead time means others may have taken over: the
scheduler then re-checks its claims before publishing them.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from scheduler import timeline

logger = logging.getLogger("tablebeat.beat")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Heartbeat:
    """Stamps ``beat_node(token)`` every ``every`` seconds from a daemon thread."""

    def __init__(self, engine: Engine, token: str, every: float, dead_seconds: float) -> None:
        self.engine = engine
        self.token = token
        self.every = every
        self.dead_seconds = dead_seconds
        self._stop = threading.Event()
        self._stalled = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_ok: float | None = None

    def stamp(self) -> bool:
        """Stamp once now in a transaction of its own; returns whether the database took it."""
        try:
            with self.engine.begin() as conn:
                timeline.stamp_beat(conn, self.token, datetime.now(UTC))
        except SQLAlchemyError:
            return False  # the scheduler loop reports database outages
        self.stamped()
        return True

    def stamp_in(self, conn: Connection) -> None:
        """Stamp inside the caller's transaction (call :meth:`stamped` once it commits)."""
        timeline.stamp_beat(conn, self.token, datetime.now(UTC))

    def stamped(self) -> None:
        """A stamp committed now."""
        now = time.monotonic()
        if self._last_ok is not None and now - self._last_ok > self.dead_seconds / 2:
            self._stalled.set()
        self._last_ok = now

    def start(self) -> None:
        self.stamp()
        self._thread = threading.Thread(target=self._run, name="tablebeat-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # The loop stamps every ``every`` seconds; this thread only when the loop is a third late.
        # It sleeps until that moment rather than in fixed steps: an idle beat wakes it about
        # once per stamp, not twice a second.
        late = self.every * 1.33
        wait = late
        while not self._stop.wait(wait):
            last, now = self._last_ok, time.monotonic()
            if last is None or now - last >= late:
                wait = late if self.stamp() else self.every / 2
            else:
                wait = last + late - now

    def take_stall(self) -> bool:
        """Whether a gap in stamping happened since the last call (others may have taken claims over)."""
        if self._last_ok is not None and time.monotonic() - self._last_ok > self.dead_seconds / 2:
            return True
        if self._stalled.is_set():
            self._stalled.clear()
            return True
        return False

    def stop(self) -> None:
        """Stop stamping and mark this beat stopped, so others take over its claims at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with self.engine.begin() as conn:
                timeline.mark_stopped(conn, self.token, EPOCH)
        except SQLAlchemyError as exc:
            logger.warning("tablebeat: could not mark beat %s stopped: %s", self.token, exc)
