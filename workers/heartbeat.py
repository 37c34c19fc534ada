"""Worker liveness: the main worker process stamps ``worker_heartbeat`` so beat can find lost runs."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any

from celery import signals
from sqlalchemy import delete, update
from sqlalchemy.exc import SQLAlchemyError

from models import WorkerHeartbeat, make_engine

logger = logging.getLogger(__name__)

#: Seconds between stamps; beat declares a worker dead after several missed ones.
HEARTBEAT_EVERY_S = 5.0


class HeartbeatThread(threading.Thread):
    """Daemon thread that stamps this worker's row until stopped."""

    def __init__(self, hostname: str) -> None:
        super().__init__(name="tablebeat-heartbeat", daemon=True)
        self.hostname = hostname
        self.engine = make_engine()
        self._stop_event = threading.Event()
        self._failing = False

    def run(self) -> None:
        started = datetime.now(timezone.utc)
        while not self._stop_event.is_set():
            self._stamp(started)
            self._stop_event.wait(HEARTBEAT_EVERY_S)

    def _stamp(self, started: datetime) -> None:
        now = datetime.now(timezone.utc)
        try:
            with self.engine.begin() as conn:
                moved = conn.execute(
                    update(WorkerHeartbeat).where(WorkerHeartbeat.hostname == self.hostname).values(seen_at=now)
                ).rowcount
                if not moved:
                    conn.execute(
                        WorkerHeartbeat.__table__.insert().values(hostname=self.hostname, seen_at=now, started_at=started)
                    )
        except SQLAlchemyError as exc:
            if not self._failing:
                logger.warning("heartbeat of %s not written (database unavailable?): %s", self.hostname, exc)
            self._failing = True
            return
        if self._failing:
            logger.warning("heartbeat of %s written again", self.hostname)
        self._failing = False

    def stop(self) -> None:
        """Stop stamping and remove this worker's row (a clean shutdown is not a death)."""
        self._stop_event.set()
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.hostname == self.hostname))
        except SQLAlchemyError:
            logger.warning("could not remove heartbeat row of %s", self.hostname)


_thread: HeartbeatThread | None = None


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    global _thread
    hostname = getattr(sender, "hostname", None) or "unknown"
    _thread = HeartbeatThread(hostname)
    _thread.start()


@signals.worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    if _thread is not None:
        _thread.stop()
