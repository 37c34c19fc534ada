"""Beat liveness: ``beat_node`` stamps, so other beats take over the claims of one that stopped.

Only claimed, unpublished fires are lost when a beat dies, so only a beat holding some must
look alive: while it holds claims it stamps every ``every`` seconds (the scheduler loop in its
change-log poll; this thread when the loop has not for a tenth longer, so a long tick, such as a
100,000-fire burst, does not look like a dead beat), and it stamps inside each claim's own
transaction, so a claim is never older than its beat's stamp.  A beat holding none stamps every
:data:`IDLE_STAMP_S` (its row is kept), and its thread sleeps.  A frozen or killed process stops
stamping and its claims are taken over.  A gap between two stamps longer than half the dead time
while holding claims means others may have taken over: the scheduler then re-checks its claims
before publishing them.
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
#: While holding claims the stamp interval is at most this share of ``dead_seconds``: a gap longer than
#: half of it is taken for a stall (claims re-checked before publishing), so the loop's stamps (one per
#: change-log poll) and the thread's (a tenth late) must stay under half. With stamps every second and
#: 1.5 s dead, every gap was taken for a stall: a test beat firing 30 tasks a second re-checked its
#: claims before 79-98 of its publishes in 12 s.
STAMP_SHARE_OF_DEAD = 0.4

#: A beat holding no claims stamps this often: its row stays (rows silent for far longer are pruned),
#: and nothing is lost if it dies meanwhile.
IDLE_STAMP_S = 30.0


class Heartbeat:
    """Stamps ``beat_node(token)``: every ``every`` seconds while :meth:`hold` says claims are held."""

    def __init__(self, engine: Engine, token: str, every: float, dead_seconds: float) -> None:
        self.engine = engine
        self.token = token
        self.every = min(every, dead_seconds * STAMP_SHARE_OF_DEAD)
        self.dead_seconds = dead_seconds
        self._stop = threading.Event()
        #: Set while this beat holds claimed, unpublished fires (the thread sleeps while it is clear).
        self._holding = threading.Event()
        #: Whether claims were held at any time since the last stamp (a gap then is a stall).
        self._held_since_stamp = False
        self._stalled = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_ok: float | None = None

    def hold(self, holding: bool) -> None:
        """Whether this beat now holds claimed, unpublished fires (stamps are needed only then)."""
        if holding:
            self._held_since_stamp = True
            if not self._holding.is_set():
                self._holding.set()
        elif self._holding.is_set():
            self._holding.clear()

    @property
    def holding(self) -> bool:
        return self._holding.is_set()

    def due(self) -> bool:
        """Whether the loop should stamp now: a stamp interval since the last one while holding claims
        (less a quarter: the loop's polls are half an interval apart and must not stamp a poll late),
        :data:`IDLE_STAMP_S` otherwise."""
        if self._last_ok is None:
            return True
        every = self.every * 0.75 if self._holding.is_set() else IDLE_STAMP_S
        return time.monotonic() - self._last_ok >= every

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
        gap = None if self._last_ok is None else now - self._last_ok
        if gap is not None and gap > self.dead_seconds / 2 and self._held_since_stamp:
            self._stalled.set()
        self._held_since_stamp = self._holding.is_set()
        self._last_ok = now

    def start(self) -> None:
        self.stamp()
        self._thread = threading.Thread(target=self._run, name="tablebeat-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # The loop stamps every ``every`` seconds while holding claims; this thread only when the loop
        # is a tenth late (still under half the dead time: STAMP_SHARE_OF_DEAD). It sleeps until that
        # moment rather than in fixed steps, and while no claim is held it sleeps until one is (an
        # idle beat does not wake it at all).
        late = self.every * 1.1
        wait = late
        while not self._stop.is_set():
            if not self._holding.is_set():
                self._holding.wait()  # hold(True), or stop()
                wait = late
                continue
            if self._stop.wait(wait):
                break
            last, now = self._last_ok, time.monotonic()
            if not self._holding.is_set():
                continue
            if last is None or now - last >= late:
                wait = late if self.stamp() else self.every / 2
            else:
                wait = last + late - now

    def take_stall(self) -> bool:
        """Whether a gap in stamping happened while holding claims since the last call (others may have
        taken claims over)."""
        if (
            self._holding.is_set()
            and self._last_ok is not None
            and time.monotonic() - self._last_ok > self.dead_seconds / 2
        ):
            return True
        if self._stalled.is_set():
            self._stalled.clear()
            return True
        return False

    def stop(self) -> None:
        """Stop stamping and mark this beat stopped, so others take over its claims at once."""
        self._stop.set()
        self._holding.set()  # wakes the thread to see the stop
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with self.engine.begin() as conn:
                timeline.mark_stopped(conn, self.token, EPOCH)
        except SQLAlchemyError as exc:
            logger.warning("tablebeat: could not mark beat %s stopped: %s", self.token, exc)
