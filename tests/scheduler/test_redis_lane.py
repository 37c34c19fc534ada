"""The Redis lane stores the very message kombu would, on the list kombu would, in publish order.

Each case publishes the same fire twice into a real Redis: once through kombu (the lane off) and
once through the lane, and compares what landed (the envelope, parsed, and its list key); only
the per-message ``delivery_tag`` differs. Where the lane cannot be sure, kombu publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery, signals

from scheduler.dispatch import BrokerUnavailable, Dispatch, Publisher
from scheduler.redis_lane import RedisLane
from tests.processes import free_port, redis_broker_db

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _dispatch(run_id: int, queue: str | None = None, expires: datetime | None = None) -> Dispatch:
    return Dispatch(
        run_id=run_id,
        task_key=f"key-{run_id}",
        job_name="jobs.noop",
        args=("a", 1),
        kwargs={"n": 2},
        queue=queue,
        trace_id=f"{run_id:032x}",
        celery_id=f"celery-{run_id}",
        scheduled_at=AT,
        expires_at=expires,
        task_id=run_id,
        max_instances=1,
        config_at=AT,
    )


@pytest.fixture
def broker() -> Iterator[str]:
    with redis_broker_db() as url:
        yield url


def _app(url: str, **conf: Any) -> Celery:
    app = Celery("lane-test", broker=url, set_as_current=False)
    app.conf.update(task_ignore_result=True, **conf)
    return app


def _stored(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every list in the broker's database (kombu's bookkeeping sets left out), oldest message first."""
    client = redis.Redis.from_url(url)
    lists = {}
    for key in client.keys("*"):
        if client.type(key) == b"list":
            lists[key.decode()] = [json.loads(raw) for raw in reversed(client.lrange(key, 0, -1))]
    return lists


def _without_tag(envelope: dict[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in envelope["properties"].items() if k != "delivery_tag"}
    return {**envelope, "properties": properties}


CASES = {
    "default queue": ({}, {}, {}),
    "the row's queue": ({"queue": "reports"}, {}, {}),
    "expiry": ({"expires": AT + timedelta(minutes=5)}, {}, {}),
    "routed with a priority": ({}, {"task_routes": {"jobs.*": {"queue": "urgent", "priority": 7}}}, {}),
    "utf-8 bodies and a key prefix": ({}, {}, {"body_encoding": "utf-8", "global_keyprefix": "tb:"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lane_stores_what_kombu_stores(broker: str, case: str) -> None:
    fire, conf, options = CASES[case]
    app = _app(broker, broker_transport_options=options, **conf)
    by_kombu, by_lane = Publisher(app), Publisher(app)
    by_kombu._lane = None
    assert by_lane._redis_lane() is not None

    prepared = by_lane.prepare(_dispatch(1, **fire))
    assert prepared.wire is not None, "the lane declined a plain fire"
    assert by_kombu.publish([_dispatch(1, **fire)]) == [1]
    [(key, [from_kombu])] = _stored(broker).items()
    redis.Redis.from_url(broker).delete(key)

    assert by_lane.publish([prepared]) == [1]
    [(lane_key, [from_lane])] = _stored(broker).items()
    assert lane_key == key
    assert _without_tag(from_lane) == _without_tag(from_kombu)
    assert from_lane["properties"]["delivery_tag"] != from_kombu["properties"]["delivery_tag"]


def test_batches_keep_publish_order_per_queue(broker: str) -> None:
    publisher = Publisher(_app(broker), batch_size=3)
    fires = [_dispatch(i, queue=("a" if i % 3 else "b")) for i in range(1, 11)]
    assert publisher.publish([publisher.prepare(f) for f in fires]) == list(range(1, 11))
    stored = _stored(broker)
    for queue in ("a", "b"):
        run_ids = [m["headers"]["tablebeat_run_id"] for m in stored[queue]]
        assert run_ids == [f.run_id for f in fires if f.queue == queue]


def test_a_publish_signal_receiver_makes_kombu_publish(broker: str) -> None:
    publisher = Publisher(_app(broker))
    prepared = publisher.prepare(_dispatch(1))  # built while nothing listened

    def stamp(headers: dict[str, Any], **_: Any) -> None:
        headers["stamped"] = True

    signals.before_task_publish.connect(stamp, weak=False)
    try:
        assert publisher.prepare(_dispatch(2)).wire is None
        assert publisher.publish([prepared]) == [1]
    finally:
        signals.before_task_publish.disconnect(stamp)
    [(_key, [message])] = _stored(broker).items()
    assert message["headers"]["stamped"] is True


@pytest.mark.parametrize(
    ("url", "conf", "options"),
    [
        ("amqp://guest:guest@127.0.0.1:5672//", {}, {}),
        ("sqla+sqlite:///lane-test.db", {}, {}),
        ("redis://127.0.0.1:6379/0", {"task_compression": "gzip"}, {}),
        ("redis://127.0.0.1:6379/0", {}, {"retry_on_timeout": True}),
    ],
    ids=["amqp", "sqlalchemy", "compression", "replayed pipelines"],
)
def test_no_lane_where_kombu_must_publish(url: str, conf: dict[str, Any], options: dict[str, Any]) -> None:
    assert RedisLane.for_app(_app(url, broker_transport_options=options, **conf)) is None


def test_unreachable_redis_is_broker_unavailable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = _app(url, broker_connection_timeout=1, broker_connection_max_retries=0)
    publisher = Publisher(app)
    prepared = publisher.prepare(_dispatch(1))
    assert prepared.wire is not None  # built without the broker
    with pytest.raises(BrokerUnavailable):
        publisher.publish([prepared])


def test_beat_process_has_no_publish_receivers() -> None:
    """Beat loads the workers' app (``-A workers``); nothing it imports may turn the lane off."""
    import workers

    assert workers.load_job_modules() is not None
    assert not RedisLane.publish_hooked()
