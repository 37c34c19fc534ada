"""Claim transactions on a thread of their own, so beat's main thread publishes while the database claims.

A sustained load claims several batches a tick: each is a transaction (lock the due rows, plan,
insert the runs, move the rows) followed by building one Celery message per won fire.  On one
thread, beat waited on the database while the database waited on beat, and a fire that came due
during a claim waited for its end.  Here each transaction runs on this one thread with a connection
of its own: the database works on batch k+1 while the main thread builds batch k's messages (the
GIL is released while the driver waits on its socket), and the main thread publishes fires as they
come due while it waits for a batch.  It still takes every batch in, in order, and never leaves a
claim pass with one in flight: whatever a transaction committed is taken in before anything else
looks at the claims.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from scheduler import store
from scheduler.planning import PlannedFire
from scheduler.rows import ScheduledJob

Planned = tuple[ScheduledJob, list[PlannedFire], datetime | None]


@dataclass(slots=True)
class ClaimedBatch:
    """What one claim transaction did, for the main thread to take in."""

    limit: int
    #: Due rows the transaction locked (a batch as big as ``limit`` means more may be due).
    rows: int = 0
    planned: list[Planned] = field(default_factory=list)
    claims: list[store.FireClaim] = field(default_factory=list)
    won: dict[str, int] = field(default_factory=dict)
    #: Seconds the transaction took (the claim rate is measured on it).
    seconds: float = 0.0
    #: The lookahead horizon it claimed up to (epoch seconds).
    horizon_ts: float = 0.0
    #: Read when the batch was not full: the timeline's first instant (epoch seconds, None when empty)
    #: and, when that is within the longest lead, how many rows are due with it.
    next_due_ts: float | None = None
    due_with_it: int | None = None
    error: SQLAlchemyError | None = None

    @property
    def full(self) -> bool:
        return self.rows >= self.limit

    @property
    def earliest(self) -> float | None:
        """The earliest instant among the fires planned (epoch seconds)."""
        instants = (fire.scheduled_at.timestamp() for _job, fires, _nxt in self.planned for fire in fires)
        return min(instants, default=None)


class ClaimAhead:
    """One thread that runs the next claim transaction; at most one batch in flight."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._flight: Future[ClaimedBatch] | None = None

    @property
    def in_flight(self) -> bool:
        return self._flight is not None

    def submit(self, claim: Callable[..., ClaimedBatch], *args: Any) -> None:
        """Start ``claim(*args)`` on the claim thread (the previous batch must have been taken)."""
        assert self._flight is None, "take the batch in flight first"
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tablebeat-claim")
        self._flight = self._pool.submit(claim, *args)

    def take(self, timeout: float | None = None) -> ClaimedBatch | None:
        """The batch in flight once its transaction ends (its database errors are in ``error``; others
        raise), or None if it is still running after ``timeout`` seconds."""
        assert self._flight is not None
        try:
            batch = self._flight.result(timeout)
        except FutureTimeout:
            return None
        self._flight = None
        return batch

    def close(self) -> None:
        """Let a batch in flight commit or fail, then stop the thread (its claims, if any, are held by a
        beat that is stopping: the others take them over once it is marked stopped)."""
        self._flight = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
