"""The schedulers compared: how each stores N tasks, how its beat starts, how an edit is made.

Every peer gets the same work: ``idle`` tasks on a 1-hour interval that do not fire during the
run, and ``burst`` tasks that all fire at one instant ``burst_at`` (interval 1 h whose last run
was ``burst_at`` - 1 h).  An edit makes one idle task due now through the peer's own edit path:
SQL for the SQL schedulers (plus the change marker their ORM's save signal bumps), the Redis
sorted set for RedBeat.  Seeding is bulk (``INSERT ... SELECT`` from a number series, Redis
pipelines): it is not what is measured.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any

from sqlalchemy import text

from bench.env import BenchEnv
from bench.seed import empty_tables, seed_tasks, utc_naive

IDLE_S = 3600
#: Seeded rows per INSERT ... SELECT.
SERIES_BATCH = 100_000


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass
class Peer:
    """One scheduler under comparison."""

    name: str
    dist: str
    #: celery -A <app> beat -S <scheduler>
    app: str = "bench.compare.peer_app"
    scheduler: str = ""
    #: Seconds of start-up allowed per 1,000 tasks (beyond a fixed 20 s) before giving up.
    start_s_per_1000: float = 0.05
    edit_path: str = "SQL UPDATE"

    @property
    def label(self) -> str:
        return f"{self.name} {version(self.dist)}"

    def installed(self) -> bool:
        return version(self.dist) != "not installed"

    def env(self, bench: BenchEnv) -> dict[str, str]:
        return {"BENCH_BROKER_URL": bench.redis_url, "BENCH_PEER_DB_URL": _pymysql_url(bench.db_url)}

    def beat_argv(self) -> list[str]:
        """After ``python -m``: how this scheduler's beat is started (debug: Celery logs every tick)."""
        argv = ["celery", "-A", self.app, "beat", "-l", "debug"]
        return [*argv, "-S", self.scheduler] if self.scheduler else argv

    def prepare(self, bench: BenchEnv) -> None:
        """Create this peer's empty storage."""

    def seed(self, bench: BenchEnv, idle: int, burst: int, burst_at: datetime) -> None:
        raise NotImplementedError

    def make_due(self, bench: BenchEnv, index: int) -> None:
        """Edit idle task ``index`` so that it is due now."""
        raise NotImplementedError


def _pymysql_url(url: str) -> str:
    return url.split("?", 1)[0]


def _series(bench: BenchEnv, table: str, columns: dict[str, str], count: int, params: dict[str, Any]) -> None:
    """``INSERT INTO table (columns) SELECT exprs FROM seq_0_to_N`` in batches; ``{n}`` in an expr is the number."""
    names = ", ".join(f"`{c}`" for c in columns)
    with bench.engine.begin() as conn:
        for first in range(0, count, SERIES_BATCH):
            last = min(first + SERIES_BATCH, count) - 1
            exprs = ", ".join(e.format(n="seq") for e in columns.values())
            conn.execute(text(f"INSERT INTO {table} ({names}) SELECT {exprs} FROM seq_{first}_to_{last}"), params)


class Tablebeat(Peer):
    def __init__(self) -> None:
        super().__init__("tablebeat", "tablebeat", app="workers", edit_path="SQL UPDATE (change log)")

    def beat_argv(self) -> list[str]:
        # Its lean launcher (the same Celery beat loop without the celery CLI's plugins).
        return ["scheduler", "-A", "workers", "-l", "debug"]

    def env(self, bench: BenchEnv) -> dict[str, str]:
        return bench.process_env()

    def seed(self, bench: BenchEnv, idle: int, burst: int, burst_at: datetime) -> None:
        empty_tables(bench)
        now = datetime.now(UTC).replace(microsecond=0)
        seed_tasks(
            bench,
            idle,
            trigger="interval",
            spec=str(IDLE_S),
            anchor=now,
            next_run_at=now + timedelta(seconds=IDLE_S),
            key_prefix="idle",
        )
        if burst:
            anchor = burst_at - timedelta(seconds=IDLE_S)
            seed_tasks(
                bench,
                burst,
                trigger="interval",
                spec=str(IDLE_S),
                anchor=anchor,
                next_run_at=burst_at,
                key_prefix="burst",
            )

    def make_due(self, bench: BenchEnv, index: int) -> None:
        # A date a few ms ahead: "due now" for a one-shot trigger (a past date never fires).
        spec = (datetime.now(UTC) + timedelta(milliseconds=20)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        bench.execute("UPDATE task SET `trigger` = 'date', spec = :spec WHERE id = :id", spec=spec, id=index + 1)


class DjangoCeleryBeat(Peer):
    def __init__(self) -> None:
        super().__init__(
            "django-celery-beat",
            "django-celery-beat",
            scheduler="django_celery_beat.schedulers:DatabaseScheduler",
            start_s_per_1000=0.3,
            edit_path="SQL UPDATE + periodic_tasks.last_update (what save() does)",
        )

    def env(self, bench: BenchEnv) -> dict[str, str]:
        return {**super().env(bench), "DJANGO_SETTINGS_MODULE": "bench.compare.django_settings"}

    def prepare(self, bench: BenchEnv) -> None:
        import os
        import subprocess
        import sys

        code = "import django; django.setup(); from django.core.management import call_command; "
        code += "call_command('migrate', 'django_celery_beat', verbosity=0)"
        subprocess.run([sys.executable, "-c", code], env={**os.environ, **self.env(bench)}, check=True, timeout=300)

    def seed(self, bench: BenchEnv, idle: int, burst: int, burst_at: datetime) -> None:
        now = utc_naive(datetime.now(UTC))
        with bench.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO django_celery_beat_intervalschedule (every, period) VALUES (3600, 'seconds')")
            )
            interval = conn.scalar(text("SELECT MAX(id) FROM django_celery_beat_intervalschedule"))
            conn.execute(
                text("INSERT INTO django_celery_beat_periodictasks (ident, last_update) VALUES (1, :now)"), {"now": now}
            )
        columns = {
            "name": "CONCAT(:prefix, LPAD({n}, 7, '0'))",
            "task": "'bench.peer_noop'",
            "args": "'[]'",
            "kwargs": "'{{}}'",
            "enabled": "1",
            "last_run_at": ":last",
            "total_run_count": "0",
            "date_changed": ":now",
            "description": "''",
            "interval_id": str(interval),
            "one_off": "0",
            "headers": "'{{}}'",
        }
        _series(bench, "django_celery_beat_periodictask", columns, idle, {"prefix": "idle-", "last": now, "now": now})
        if burst:
            last = utc_naive(burst_at - timedelta(seconds=IDLE_S))
            _series(
                bench, "django_celery_beat_periodictask", columns, burst, {"prefix": "burst-", "last": last, "now": now}
            )

    def make_due(self, bench: BenchEnv, index: int) -> None:
        past = utc_naive(datetime.now(UTC) - timedelta(seconds=2 * IDLE_S))
        now = utc_naive(datetime.now(UTC))
        with bench.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE django_celery_beat_periodictask SET last_run_at = :past, date_changed = :now WHERE id = :id"
                ),
                {"past": past, "now": now, "id": index + 1},
            )
            conn.execute(text("UPDATE django_celery_beat_periodictasks SET last_update = :now"), {"now": now})


class SqlalchemyCeleryBeat(Peer):
    def __init__(self) -> None:
        super().__init__(
            "sqlalchemy-celery-beat",
            "sqlalchemy-celery-beat",
            scheduler="sqlalchemy_celery_beat.schedulers:DatabaseScheduler",
            start_s_per_1000=0.4,
            edit_path="SQL UPDATE + periodictaskchanged.last_update (what the ORM listener does)",
        )

    def prepare(self, bench: BenchEnv) -> None:
        from sqlalchemy_celery_beat.session import SessionManager

        engine, _session = SessionManager().create_session(_pymysql_url(bench.db_url), schema=None)
        SessionManager().prepare_models(engine, schema=None)
        engine.dispose()

    def seed(self, bench: BenchEnv, idle: int, burst: int, burst_at: datetime) -> None:
        now = utc_naive(datetime.now(UTC)).replace(microsecond=0)
        with bench.engine.begin() as conn:
            conn.execute(text("INSERT INTO celery_intervalschedule (every, period) VALUES (3600, 'seconds')"))
            interval = conn.scalar(text("SELECT MAX(id) FROM celery_intervalschedule"))
            conn.execute(
                text("INSERT INTO celery_periodictaskchanged (id, last_update) VALUES (1, :now)"), {"now": now}
            )
        columns = {
            "name": "CONCAT(:prefix, LPAD({n}, 7, '0'))",
            "task": "'bench.peer_noop'",
            "args": "'[]'",
            "kwargs": "'{{}}'",
            "headers": "'{{}}'",
            "one_off": "0",
            "enabled": "1",
            "last_run_at": ":last",
            "total_run_count": "0",
            "date_changed": ":now",
            "description": "''",
            "discriminator": "'intervalschedule'",
            "schedule_id": str(interval),
        }
        _series(bench, "celery_periodictask", columns, idle, {"prefix": "idle-", "last": now, "now": now})
        if burst:
            last = utc_naive(burst_at - timedelta(seconds=IDLE_S))
            _series(bench, "celery_periodictask", columns, burst, {"prefix": "burst-", "last": last, "now": now})

    def make_due(self, bench: BenchEnv, index: int) -> None:
        past = utc_naive(datetime.now(UTC) - timedelta(seconds=2 * IDLE_S)).replace(microsecond=0)
        now = utc_naive(datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=1)
        with bench.engine.begin() as conn:
            conn.execute(
                text("UPDATE celery_periodictask SET last_run_at = :past, date_changed = :now WHERE id = :id"),
                {"past": past, "now": now, "id": index + 1},
            )
            conn.execute(text("UPDATE celery_periodictaskchanged SET last_update = :now WHERE id = 1"), {"now": now})


class RedBeat(Peer):
    KEY_PREFIX = "redbeat:"

    def __init__(self) -> None:
        super().__init__(
            "celery-redbeat",
            "celery-redbeat",
            scheduler="redbeat.RedBeatScheduler",
            start_s_per_1000=0.05,
            edit_path="its Redis sorted set (what entry.save() writes; it has no SQL table)",
        )

    def seed(self, bench: BenchEnv, idle: int, burst: int, burst_at: datetime) -> None:
        now = datetime.now(UTC)
        self._write(bench, "idle-", idle, now, now + timedelta(seconds=IDLE_S))
        if burst:
            self._write(bench, "burst-", burst, burst_at - timedelta(seconds=IDLE_S), burst_at)

    def _write(self, bench: BenchEnv, prefix: str, count: int, last: datetime, due: datetime) -> None:
        from celery.schedules import schedule as every
        from redbeat.decoder import RedBeatJSONEncoder

        template = json.dumps(
            {
                "name": "@NAME@",
                "task": "bench.peer_noop",
                "args": [],
                "kwargs": {},
                "options": {},
                "schedule": every(timedelta(seconds=IDLE_S)),
                "enabled": True,
            },
            cls=RedBeatJSONEncoder,
        )
        meta = json.dumps({"last_run_at": last}, cls=RedBeatJSONEncoder)
        score = due.timestamp()
        pipe = bench.redis.pipeline(transaction=False)
        for i in range(count):
            name = f"{prefix}{i:07d}"
            key = f"{self.KEY_PREFIX}{name}"
            pipe.hset(key, mapping={"definition": template.replace("@NAME@", name), "meta": meta})
            pipe.zadd(f"{self.KEY_PREFIX}:schedule", {key: score})
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()

    def make_due(self, bench: BenchEnv, index: int) -> None:
        from redbeat.decoder import RedBeatJSONEncoder

        key = f"{self.KEY_PREFIX}idle-{index:07d}"
        past = datetime.now(UTC) - timedelta(seconds=IDLE_S)
        bench.redis.hset(key, "meta", json.dumps({"last_run_at": past}, cls=RedBeatJSONEncoder))
        bench.redis.zadd(f"{self.KEY_PREFIX}:schedule", {key: time.time()})


class TablebeatPolling5s(Tablebeat):
    """tablebeat looking at its change log every 5 s, as RedBeat looks at its sorted set (beat_max_loop_interval 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "tablebeat-poll-5s"

    def env(self, bench: BenchEnv) -> dict[str, str]:
        return {**bench.process_env(), "TABLEBEAT_POLL_SECONDS": "5"}


PEERS: dict[str, type[Peer]] = {
    "tablebeat": Tablebeat,
    "tablebeat-poll-5s": TablebeatPolling5s,
    "django-celery-beat": DjangoCeleryBeat,
    "celery-redbeat": RedBeat,
    "sqlalchemy-celery-beat": SqlalchemyCeleryBeat,
}


#: Run unless --peers says otherwise (tablebeat-poll-5s is a variant of ours, asked for by name).
DEFAULT_PEERS = ("tablebeat", "django-celery-beat", "celery-redbeat", "sqlalchemy-celery-beat")


def unique_suffix() -> str:
    return uuid.uuid4().hex[:6]
