"""Pushing prepared task messages straight into a Redis broker's lists: one LPUSH per queue per batch.

kombu's publish path costs 35-45 us of Python per message (Celery's ``send_task_message``, the
producer, the channel's envelope, one pipelined LPUSH each), so 100,000 fires at one instant took
5-8 s to publish. Beat builds each message's envelope -- the JSON kombu's Redis transport stores --
when the fire is claimed, ahead of its instant; at the instant a whole batch goes to its queue in
one LPUSH, and workers consume it as any kombu message.

Only where that is the message kombu would store: a Redis broker whose pipelines are never
replayed, a direct-exchange queue, no compression, no ``x-expires`` queue, and no receiver of
Celery's publish signals (one may change the message). Everything else goes through kombu.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import Celery, signals
from kombu import entity
from kombu.entity import Queue
from kombu.exceptions import BatchPublishError
from kombu.utils import json as kombu_json

if TYPE_CHECKING:
    from kombu.transport.redis import Channel as RedisChannel

# kombu's own helpers (untyped): the envelope must be what kombu writes, byte for byte where it can.
_dumps: Any = kombu_json.dumps
_delivery_mode: Any = entity.maybe_delivery_mode

#: Route keys the lane knows how to apply; any other makes kombu publish the message.
ROUTE_KEYS = frozenset({"queue", "priority", "content_type", "content_encoding"})


@dataclass(frozen=True, slots=True)
class Wire:
    """One message as kombu's Redis transport stores it, and the queue it goes to."""

    queue: str
    priority: int
    payload: str


class RedisLane:
    """Builds kombu-identical Redis envelopes ahead of time and pushes batches of them."""

    def __init__(self, app: Celery, channel_cls: type[RedisChannel], options: Mapping[str, Any]) -> None:
        from redis.exceptions import RedisError

        self._redis_error = RedisError
        self.body_encoding: str | None = options.get("body_encoding", channel_cls.body_encoding)
        self._codec: Any = channel_cls.codecs.get(self.body_encoding) if self._encoded(self.body_encoding) else None
        self.min_priority = channel_cls.min_priority
        self.max_priority = channel_cls.max_priority
        self.default_priority = channel_cls.default_priority
        self.default_delivery_mode = app.conf.task_default_delivery_mode
        self._keys: dict[tuple[str, int], str] = {}

    @classmethod
    def for_app(cls, app: Celery) -> RedisLane | None:
        """The lane of ``app``'s broker, or None where kombu must publish (not Redis, compression, or
        a transport that may replay a pipeline: a replayed LPUSH would send a batch twice)."""
        if app.conf.task_compression:
            return None
        conn = app.connection_for_write()  # resolves the transport class; does not connect
        try:
            if getattr(conn.transport, "driver_type", None) != "redis":
                return None
            # Imported here, not with beat, and for a Redis broker only: redis-py costs a few hundred
            # ms (and, with OpenTelemetry installed, loads its SDK).
            from kombu.transport.redis import Channel as RedisChannel
            from kombu.transport.redis import _batch_publish_retry_safe

            never_replayed: Any = _batch_publish_retry_safe  # untyped

            channel_cls = getattr(conn.transport, "Channel", None)
            if not (isinstance(channel_cls, type) and issubclass(channel_cls, RedisChannel)):
                return None
            options = dict(conn.transport_options or {})
        finally:
            conn.release()
        if not never_replayed(options):  # kombu's own test of the options, as for its publish batches
            return None
        return cls(app, channel_cls, options)

    @staticmethod
    def publish_hooked() -> bool:
        """True when a receiver of Celery's publish signals is connected (it may change the message)."""
        return bool(signals.before_task_publish.receivers or signals.after_task_publish.receivers)

    def wire(self, message: Any, route: Mapping[str, Any]) -> Wire | None:
        """The envelope of a Celery message (``app.amqp.create_task_message`` with its body already
        serialized) routed by ``route``, or None when only kombu can publish it."""
        if not ROUTE_KEYS.issuperset(route):
            return None
        queue = route.get("queue")
        if not isinstance(queue, Queue) or queue.exchange is None or queue.exchange.type != "direct":
            return None
        headers, properties, body, sent_event = message
        if sent_event is not None:
            return None
        delivery_mode = queue.exchange.delivery_mode or self.default_delivery_mode
        delivery_mode = _delivery_mode(delivery_mode)  # as kombu's producer: a named mode becomes its number
        priority = route.get("priority") or self.default_priority
        encoding = route.get("content_encoding")
        # As kombu's producer does with a body serialized already: text becomes bytes.
        if isinstance(body, str):
            encoding = encoding or "utf-8"
            body = body.encode(encoding)
        elif not encoding:
            encoding = "binary"
        if self._codec is not None:
            body = self._codec.encode(body)
        # Celery sends a direct queue's messages through the anonymous exchange, keyed by the queue's name.
        props = {
            **properties,
            "delivery_mode": delivery_mode,
            "delivery_info": {"exchange": "", "routing_key": queue.name},
            "priority": priority,
            "body_encoding": self.body_encoding,
            "delivery_tag": str(uuid.uuid4()),
        }
        envelope = {
            "body": body,
            "content-encoding": encoding,
            "content-type": route.get("content_type"),
            "headers": headers,
            "properties": props,
        }
        return Wire(queue.name, self._stored_priority(priority), _dumps(envelope))

    def push(self, channel: Any, wires: Iterable[Wire]) -> None:
        """LPUSH ``wires`` in one pipeline, one command per run of the same list.

        :raises BatchPublishError: Redis failed; delivery is then uncertain for the whole batch
            (the outbox republishes it, and the worker's guard drops a copy).
        """
        keys = self._keys
        with channel.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            try:
                key = None
                payloads: list[str] = []
                for w in wires:
                    k = keys.get((w.queue, w.priority))
                    if k is None:
                        k = keys[(w.queue, w.priority)] = channel._q_for_pri(w.queue, w.priority)
                    if k != key:
                        if payloads:
                            pipe.lpush(key, *payloads)
                        key, payloads = k, []
                    payloads.append(w.payload)
                if payloads:
                    pipe.lpush(key, *payloads)
                pipe.execute()
            except self._redis_error as exc:
                raise BatchPublishError("Redis LPUSH batch failed; delivery is uncertain") from exc
            finally:
                pipe.reset()

    @staticmethod
    def accepts(channel: Any, queue: str) -> bool:
        """False for a queue declared with ``x-expires`` (kombu refreshes its expiry on every publish)."""
        expires = getattr(channel, "_expires", None)
        return not expires or queue not in expires

    def _stored_priority(self, priority: Any) -> int:
        # kombu's Channel._get_message_priority: clamped to 0-9.
        try:
            return max(min(int(priority), self.max_priority), self.min_priority)
        except (TypeError, ValueError):
            return int(self.default_priority)

    @staticmethod
    def _encoded(encoding: str | None) -> bool:
        # kombu's Channel.encode_body leaves utf-8 bodies as they are.
        return bool(encoding) and str(encoding).lower() != "utf-8"
