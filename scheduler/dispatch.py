"""Publishing claimed fires as ordinary Celery task messages, in pipelined batches."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery

logger = logging.getLogger(__name__)

SUB_TASK_ID = "sub_task_id"
TRACE_KWARG = "__unique_trace_id__"


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A claimed fire, ready to become one message."""

    run_id: int
    task_key: str
    job_name: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    queue: str | None
    trace_id: str
    celery_id: str
    scheduled_at: datetime
    expires_at: datetime | None


class BrokerUnavailable(ConnectionError):
    """The broker refused or dropped the connection while publishing."""


class Publisher:
    """Sends :class:`Dispatch` batches through one producer, pipelined where the transport can."""

    def __init__(self, app: Celery, batch_size: int = 1000) -> None:
        self.app = app
        self.batch_size = batch_size

    def publish(self, dispatches: Sequence[Dispatch]) -> list[int]:
        """Publish every dispatch; return the run ids sent.

        :raises BrokerUnavailable: when the broker cannot be reached; nothing after the
            failure point counts as sent.
        """
        sent: list[int] = []
        try:
            with self.app.producer_or_acquire() as producer:
                for start in range(0, len(dispatches), self.batch_size):
                    chunk = dispatches[start : start + self.batch_size]
                    with producer.batch(max_size=self.batch_size):
                        for item in chunk:
                            self._send(producer, item)
                    sent.extend(item.run_id for item in chunk)
        except (ConnectionError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc
        except Exception as exc:
            if _is_connection_error(self.app, exc):
                raise BrokerUnavailable(str(exc)) from exc
            raise
        return sent

    def _send(self, producer: Any, item: Dispatch) -> None:
        kwargs = dict(item.kwargs)
        kwargs[SUB_TASK_ID] = item.run_id
        kwargs[TRACE_KWARG] = item.trace_id
        options: dict[str, Any] = {}
        if item.queue:
            options["queue"] = item.queue
        self.app.send_task(
            item.job_name,
            args=(item.task_key, *item.args),
            kwargs=kwargs,
            task_id=item.celery_id,
            expires=item.expires_at,
            headers={"trace_id": item.trace_id, "task_key": item.task_key},
            producer=producer,
            retry=False,
            **options,
        )


def _is_connection_error(app: Celery, exc: BaseException) -> bool:
    try:
        errors = app.connection_for_write().connection_errors
    except Exception:  # the check itself must never raise
        return False
    return isinstance(exc, tuple(errors))
