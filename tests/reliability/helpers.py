"""Helpers of the reliability tests: plain SQL, run rows, worker log parsing."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from tests.helpers import cluster_env, sql
from tests.processes import Cluster

REPO = Path(__file__).resolve().parents[2]

#: Short knobs so crash and outage tests finish quickly; the bounds they prove scale with them.
REFRESH_S = 2
STALE_CLAIM_S = 3
WORKER_DEAD_S = 5
HEARTBEAT_S = 1
VISIBILITY_S = 12


def reliability_env(db_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """Environment of the celery processes of a reliability test (the ``local`` profile, short knobs)."""
    knobs = {
        "APP_ENV": "local",
        "TABLEBEAT_STALE_CLAIM_SECONDS": str(STALE_CLAIM_S),
        "TABLEBEAT_WORKER_DEAD_SECONDS": str(WORKER_DEAD_S),
        "TABLEBEAT_HEARTBEAT_SECONDS": str(HEARTBEAT_S),
        "TABLEBEAT_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_S),
    }
    return cluster_env(db_url, broker_url, refresh_seconds=REFRESH_S, **{**knobs, **extra})


RUN_COLUMNS = "id, status, trace_id, scheduled_at, started_at, finished_at, worker, attempt, result, error"


def runs(db: Engine, task_id: int, status: str | None = None) -> list[dict]:
    query = f"SELECT {RUN_COLUMNS} FROM execute_task WHERE task_id = :t"
    if status:
        query += " AND status = :s"
    names = [c.strip() for c in RUN_COLUMNS.split(",")]
    return [dict(zip(names, r, strict=False)) for r in sql(db, query + " ORDER BY scheduled_at", t=task_id, s=status)]


def now_naive() -> datetime:
    """Now in UTC without tzinfo: how MariaDB's DATETIME columns come back over plain SQL."""
    return datetime.now(UTC).replace(tzinfo=None)


_STARTED = re.compile(r"run (\d+) started \(attempt (\d+)\)")


def executions(logs: str) -> Counter[tuple[int, int]]:
    """How many times each (run id, attempt) began executing, from the workers' log lines."""
    return Counter((int(a), int(b)) for a, b in _STARTED.findall(logs))


def all_logs(cluster: Cluster) -> str:
    return "\n".join(p.log() for p in cluster.processes)


def count_lines(log: str, needle: str) -> int:
    return sum(1 for line in log.splitlines() if needle in line)
