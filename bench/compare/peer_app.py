"""The Celery app the peers' beats run with (``celery -A bench.compare.peer_app beat -S <scheduler>``).

Only beat runs: messages pile up in the broker, where the harness counts them.  The broker
and the peers' storage come from the environment the harness sets.
"""

from __future__ import annotations

import os

from celery import Celery

if os.environ.get("DJANGO_SETTINGS_MODULE"):
    import django

    django.setup()

app = Celery("tablebeat-bench-peer", broker=os.environ["BENCH_BROKER_URL"])
app.conf.update(
    timezone="UTC",
    enable_utc=True,
    redbeat_redis_url=os.environ["BENCH_BROKER_URL"],
    beat_dburi=os.environ.get("BENCH_PEER_DB_URL", ""),
    beat_schema=None,
    # Celery's beat messages by default: one message per fire, as tablebeat's.
    task_send_sent_event=False,
    # django-celery-beat's own default loop interval, for every peer: RedBeat would otherwise
    # sleep up to Celery's 300 s between looks at its sorted set and miss edits for minutes.
    beat_max_loop_interval=5,
)


@app.task(name="bench.peer_noop")
def peer_noop(*args: object, **kwargs: object) -> None:
    """Never runs here (no worker): the message is what is measured."""
