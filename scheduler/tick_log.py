"""Celery's "beat: Waking up now." debug line, at most once a minute instead of before every tick.

Celery's beat loop logs ``beat: Waking up <when>.`` at debug level before each sleep.  tablebeat
ticks twice a second (the change-log poll), so at ``-l debug`` that line was 170,000 lines a day
and about 0.3 ms of CPU per tick (cold formatting and writing after a 0.5 s sleep): as much as
the tick itself.  This filter on Celery's ``celery.beat`` logger lets the first sub-second
("now") line through and then one a minute; lines for sleeps of a second or more all pass.
"""

from __future__ import annotations

import logging
import time

#: Celery's message (``celery.beat.Service.start``) and its argument for a sleep under a second.
WAKING_UP = "beat: Waking up %s."
NOW = ("now",)
#: A sub-second "Waking up" line passes at most this often (the debug log still shows the loop alive).
EVERY_S = 60.0


class WakingUpOncePerMinute(logging.Filter):
    """Drops sub-second "beat: Waking up now." records logged within :data:`EVERY_S` of the last one passed."""

    def __init__(self) -> None:
        super().__init__()
        self._passed_at: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != WAKING_UP or record.args != NOW:
            return True
        now = time.monotonic()
        if self._passed_at is not None and now - self._passed_at < EVERY_S:
            return False
        self._passed_at = now
        return True


_FILTER = WakingUpOncePerMinute()


def install() -> None:
    """Add the filter to Celery's beat logger (once per process)."""
    logging.getLogger("celery.beat").addFilter(_FILTER)  # a no-op when already added
