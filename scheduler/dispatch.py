"""Publishing claimed fires as ordinary Celery task messages, in pipelined batches.

Messages are built when a fire is claimed (ahead of its instant) and only sent at the
instant. On a Redis broker the envelope kombu would store is built then too, and a batch
goes out as one LPUSH per queue (``scheduler.redis_lane``); elsewhere through one producer
in a kombu publish batch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from celery import Celery
from kombu.common import Broadcast
from kombu.entity import Queue
from kombu.exceptions import BatchPublishError
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.serialization import registry

from protocol.message import (
    CONFIG_AT_HEADER,
    MAX_INSTANCES_HEADER,
    RUN_ID_HEADER,
    SUB_TASK_ID,
    TASK_ID_HEADER,
    TASK_KEY_HEADER,
    TRACE_HEADER,
    TRACE_KWARG,
)
from scheduler.redis_lane import RedisLane, Wire
from scheduler.rows import ScheduledJob
from telemetry import otel

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Flower shows these reprs; bounded like Celery's own ``argsrepr_maxsize``.
REPR_MAX_CHARS = 1024
#: Size of the first pipelined batch of a burst: small, so its first message is out within milliseconds.
FIRST_BATCH = 50


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
    #: Let the worker start a fresh run with one UPDATE (no lookup of the task row).
    task_id: int | None = None
    max_instances: int | None = None
    #: The task's config stamp when the fire was claimed (scheduled fires only): the worker
    #: starts the run only if the task still has it (a pause, delete or edit since wins).
    config_at: datetime | None = None

    @classmethod
    def for_job(
        cls,
        job: ScheduledJob,
        run_id: int,
        trace_id: str,
        celery_id: str,
        scheduled_at: datetime,
        *,
        scheduled: bool = False,
    ) -> Dispatch:
        """The message of one run of ``job`` (expiry counted from the fire's instant).

        ``scheduled``: a fire beat claimed, cancelled by any change of the task made after
        the config this beat holds (run-now runs whatever happens to the row).
        """
        expires = job.expires_seconds
        return cls(
            run_id=run_id,
            task_key=job.task_key,
            job_name=job.job_name,
            args=job.args,
            kwargs=job.kwargs,
            queue=job.queue,
            trace_id=trace_id,
            celery_id=celery_id,
            scheduled_at=scheduled_at,
            expires_at=scheduled_at + timedelta(seconds=expires) if expires else None,
            task_id=job.task_id,
            max_instances=job.config.max_instances,
            config_at=job.anchor if scheduled else None,
        )


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """A Celery protocol-2 message built ahead of its instant, with its routing.

    Its body is already serialized (``route`` carries the content type and encoding), so
    publishing a burst at its instant costs only the transport's own encoding and the writes.
    """

    dispatch: Dispatch
    #: The Celery message; None when ``wire`` holds it (kombu then builds it again if it must publish it).
    message: Any
    route: dict[str, Any]
    #: The envelope for a Redis broker's list, when the Redis lane can publish it.
    wire: Wire | None = None


class BrokerUnavailable(ConnectionError):
    """The broker refused or dropped the connection while publishing."""


class Publisher:
    """Builds and sends task messages for :class:`Dispatch` items, pipelined where the transport can."""

    def __init__(self, app: Celery, batch_size: int = 1000) -> None:
        self.app = app
        self.batch_size = batch_size
        self._router: Any = None
        self._create: Any = None
        #: (queue option, job name) -> route, when no ``task_routes`` can make a route depend on the arguments.
        self._routes: dict[tuple[str | None, str], dict[str, Any]] | None = None
        self._typed_routes: dict[tuple[tuple[str | None, str], str, str], dict[str, Any]] = {}
        self._serializer = "json"
        self._dumps: Any = registry.dumps
        #: False until the broker's transport is resolved; then the Redis lane, or None.
        self._lane: RedisLane | None | bool = False

    def load_transport(self) -> None:
        """Import the broker transport now (redis-py: a few hundred ms of imports), ahead of the first
        publish; beat starts without it (``scheduler/__main__.py``) and calls this once ticking."""
        self._redis_lane()

    def _redis_lane(self) -> RedisLane | None:
        lane = self._lane
        if lane is False:
            try:
                lane = RedisLane.for_app(self.app)  # resolves the transport class; does not connect
            except Exception:  # a bad broker URL: the first publish reports it
                logger.debug("tablebeat: could not load the broker transport ahead of publishing", exc_info=True)
                lane = None
            self._lane = lane
        return lane  # type: ignore[return-value]

    def prepare(self, item: Dispatch) -> PreparedMessage:
        """Build the message now (CPU work done before the fire's instant)."""
        message, route = self._build(item)
        lane = self._redis_lane()
        if lane is not None and not lane.publish_hooked():
            wire = lane.wire(message, route)
            if wire is not None:
                # Only the envelope is held until the instant (half the memory of both: 1.6 vs 3.3 KB);
                # were kombu to publish it after all, the message is built again.
                return PreparedMessage(item, None, route, wire)
        return PreparedMessage(item, message, route)

    def _build(self, item: Dispatch) -> tuple[Any, dict[str, Any]]:
        """The Celery message of ``item`` (its body serialized) and its route."""
        if self._create is None:
            # Looked up once: each is a cached property whose lookup costs ~20 us, three per message.
            self._router = self.app.amqp.router
            self._create = self.app.amqp.create_task_message
            self._routes = None if self.app.conf.task_routes else {}
            self._serializer = self.app.conf.task_serializer
        args = (item.task_key, *item.args)
        kwargs = dict(item.kwargs)
        kwargs[SUB_TASK_ID] = item.run_id
        kwargs[TRACE_KWARG] = item.trace_id
        # Same routing as app.send_task: task_routes and the row's queue both apply. Without
        # task_routes the route depends only on the queue and the job (Celery's router reads
        # several settings per call: once per pair, not per message).
        route_key = (item.queue, item.job_name)
        route = None if self._routes is None else self._routes.get(route_key)
        if route is None:
            route = self._router.route({"queue": item.queue} if item.queue else {}, item.job_name, args, kwargs)
            if self._routes is not None:
                self._routes[route_key] = route
        message = self._create(
            item.celery_id,
            item.job_name,
            args,
            kwargs,
            expires=item.expires_at,
            argsrepr=repr(args)[:REPR_MAX_CHARS],
            kwargsrepr=repr(kwargs)[:REPR_MAX_CHARS],
        )
        message.headers.update(
            {TRACE_HEADER: item.trace_id, TASK_KEY_HEADER: item.task_key, RUN_ID_HEADER: item.run_id}
        )
        message.headers.update(otel.fire_headers(item.trace_id))  # W3C traceparent when OpenTelemetry is on
        if item.task_id is not None and item.max_instances is not None:
            message.headers[TASK_ID_HEADER] = item.task_id
            message.headers[MAX_INSTANCES_HEADER] = item.max_instances
        if item.config_at is not None:
            message.headers[CONFIG_AT_HEADER] = item.config_at.isoformat()
        # Serialized now, ahead of the instant (kombu publishes a body with a content type as it is).
        content_type, encoding, body = self._dumps(message.body, serializer=self._serializer)
        message = message._replace(body=body)
        # One route dict per queue and job, shared by their messages (nothing changes it).
        typed = self._typed_routes.get((route_key, content_type, encoding)) if self._routes is not None else None
        if typed is None:
            typed = {**route, "content_type": content_type, "content_encoding": encoding}
            if self._routes is not None:
                self._typed_routes[(route_key, content_type, encoding)] = typed
        return message, typed

    def publish(self, items: Sequence[Dispatch | PreparedMessage]) -> list[int]:
        """Publish every item (preparing those not prepared yet); return the run ids sent.

        :raises BrokerUnavailable: when the broker cannot be reached; nothing after the
            failure point counts as sent.
        """
        prepared = [i if isinstance(i, PreparedMessage) else self.prepare(i) for i in items]
        sent: list[int] = []
        send = self.app.amqp.send_task_message
        try:
            with self.app.producer_or_acquire() as producer:
                # Each queue declared once per publish, not once per message (kombu binds a copy of
                # the queue to the channel for every declare check: a tenth of a burst's CPU).
                queues = {id(q): q for q in (p.route.get("queue") for p in prepared) if isinstance(q, Queue)}
                for queue in queues.values():
                    if not isinstance(queue, Broadcast):
                        producer.maybe_declare(queue, retry=False)
                channel = producer.channel
                lane = self._lane_for(channel)
                wired: list[tuple[int, Wire]] = []
                kombu_sent: list[PreparedMessage] = []
                for p in prepared:
                    if lane is not None and p.wire is not None and lane.accepts(channel, p.wire.queue):
                        wired.append((p.dispatch.run_id, p.wire))
                    else:
                        kombu_sent.append(p)
                for pairs in _chunks(wired, self.batch_size):
                    assert lane is not None  # wired is empty without it
                    lane.push(channel, [wire for _run_id, wire in pairs])
                    sent.extend(run_id for run_id, _wire in pairs)
                for chunk in _chunks(kombu_sent, self.batch_size):
                    with producer.batch(max_size=self.batch_size):
                        for p in chunk:
                            message = p.message if p.message is not None else self._build(p.dispatch)[0]
                            send(producer, p.dispatch.job_name, message, retry=False, declare=[], **p.route)
                    sent.extend(p.dispatch.run_id for p in chunk)
        except (ConnectionError, OSError) as exc:
            raise BrokerUnavailable(str(exc)) from exc
        except Exception as exc:
            # A pipelined batch cut by a broker outage (delivery of that chunk is uncertain), or
            # kombu's wrapper of a refused reconnect. Unsent: the outbox republishes it, and
            # the worker's guard drops any copy.
            if isinstance(exc, (BatchPublishError, KombuOperationalError)) or _is_connection_error(self.app, exc):
                raise BrokerUnavailable(str(exc)) from exc
            raise
        return sent

    def _lane_for(self, channel: Any) -> RedisLane | None:
        """The Redis lane when it may publish now: envelopes built while a publish signal had no
        receiver, and a channel whose pipelines are never replayed (kombu's own condition)."""
        lane = self._redis_lane()
        if lane is None or lane.publish_hooked() or not getattr(channel, "supports_batch_publish", False):
            return None
        return lane


def _chunks(items: list[T], size: int) -> list[list[T]]:
    """Batches of ``size``, the first one small so the first messages of a burst land at once."""
    first = min(FIRST_BATCH, size)
    head, rest = items[:first], items[first:]
    return [head] * bool(head) + [rest[i : i + size] for i in range(0, len(rest), size)]


def _is_connection_error(app: Celery, exc: BaseException) -> bool:
    try:
        errors = app.connection_for_write().connection_errors
    except Exception:  # the check itself must never raise
        return False
    return isinstance(exc, tuple(errors))
