"""Which jobs fire when: task ids bucketed by the whole second of their next fire.

A heap entry per job costs ~120 bytes (tuple, float, counter); a slot in a per-second
list costs 8.  Entries are never removed eagerly: the caller checks each candidate
against the job's current ``next_at`` and ignores stale or duplicate ones.
"""

from __future__ import annotations

import heapq
import math


class Timeline:
    """Task ids by the second (UTC epoch) of their next fire."""

    def __init__(self) -> None:
        self._buckets: dict[int, list[int]] = {}
        self._seconds: list[int] = []  # heap of the keys of _buckets

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._buckets.values())

    def add(self, task_id: int, fire_ts: float) -> None:
        """Remember that ``task_id`` fires at epoch time ``fire_ts``."""
        second = math.floor(fire_ts)
        bucket = self._buckets.get(second)
        if bucket is None:
            self._buckets[second] = [task_id]
            heapq.heappush(self._seconds, second)
        else:
            bucket.append(task_id)

    def take_until(self, horizon_ts: float) -> list[tuple[int, int]]:
        """Remove and return ``(second, task_id)`` of every bucket at or before ``horizon_ts``.

        Candidates may be stale (the job moved or went away) or due slightly after the
        horizon within its second: the caller checks and re-adds those.
        """
        last = math.floor(horizon_ts)
        taken: list[tuple[int, int]] = []
        while self._seconds and self._seconds[0] <= last:
            second = heapq.heappop(self._seconds)
            taken.extend((second, task_id) for task_id in self._buckets.pop(second))
        return taken

    def first_second(self) -> int | None:
        """The earliest second holding a candidate, if any."""
        return self._seconds[0] if self._seconds else None
