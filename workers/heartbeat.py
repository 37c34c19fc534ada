"""Worker liveness: the main worker process stamps ``worker_heartbeat`` so beat can find lost runs."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from celery import signals
from sqlalchemy import delete, update
from sqlalchemy.exc import SQLAlchemyError

from conf.celery import settings_of
from conf.profiles import load_settings
from conf.settings import Settings
from models import make_engine
from models.tables import worker_heartbeat_table

logger = logging.getLogger(__name__)

#: When this process started: a row ``running`` on this hostname that began before it belongs
#: to a previous incarnation of the worker (restarted after a crash under the same name), so it is lost.
PROCESS_STARTED = datetime.now(UTC)


class HeartbeatThread(threading.Thread):
    """Daemon thread that stamps this worker's row until stopped."""

    def __init__(self, hostname: str, settings: Settings, queues: str | None = None) -> None:
        super().__init__(name="tablebeat-heartbeat", daemon=True)
        self.hostname = hostname
        #: The queues this worker consumes, comma-separated (beat warns about queues nobody consumes).
        self.queues = queues
        #: Seconds between stamps; beat declares a worker dead after ``worker_dead_seconds`` without one.
        self.every_s = settings.heartbeat_seconds
        self.engine = make_engine(settings.database_url)
        self._stop_event = threading.Event()
        self._failing = False

    def run(self) -> None:
        first = True
        while not self._stop_event.is_set():
            if self._stamp(PROCESS_STARTED, first):
                first = False
            self._stop_event.wait(self.every_s)

    def _stamp(self, started: datetime, first: bool = False) -> bool:
        now = datetime.now(UTC)
        values: dict[str, Any] = {"seen_at": now}
        if first:
            values["started_at"] = started  # a restart under the same hostname is a new incarnation
            values["queues"] = self.queues
        try:
            with self.engine.begin() as conn:
                moved = conn.execute(
                    update(worker_heartbeat_table)
                    .where(worker_heartbeat_table.c.hostname == self.hostname)
                    .values(**values)
                ).rowcount
                if not moved:
                    conn.execute(
                        worker_heartbeat_table.insert().values(
                            hostname=self.hostname, seen_at=now, started_at=started, queues=self.queues
                        )
                    )
        except Exception as exc:  # the thread must outlive any failure: a silent worker is a dead one
            if not self._failing:
                logger.warning("heartbeat of %s not written (database unavailable?): %s", self.hostname, exc)
            self._failing = True
            return False
        if self._failing:
            logger.warning("heartbeat of %s written again", self.hostname)
        self._failing = False
        return True

    def stop(self) -> None:
        """Stop stamping and remove this worker's row (a clean shutdown is not a death)."""
        self._stop_event.set()
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(worker_heartbeat_table).where(worker_heartbeat_table.c.hostname == self.hostname))
        except SQLAlchemyError:
            logger.warning("could not remove heartbeat row of %s", self.hostname)


_thread: HeartbeatThread | None = None


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    global _thread
    hostname = getattr(sender, "hostname", None) or "unknown"
    app = getattr(sender, "app", None)
    settings = settings_of(app.conf) if app is not None else load_settings()
    _thread = HeartbeatThread(hostname, settings, consumed_queues(sender))
    _thread.start()


def consumed_queues(consumer: Any) -> str | None:
    """The names of the queues a worker's consumer reads (``-Q``, or the default queue), comma-separated."""
    try:
        names = sorted(q.name for q in consumer.task_consumer.queues)
    except AttributeError:
        try:
            names = sorted(consumer.app.amqp.queues.consume_from)
        except AttributeError:
            return None
    return ",".join(names) or None


@signals.worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    if _thread is not None:
        _thread.stop()
