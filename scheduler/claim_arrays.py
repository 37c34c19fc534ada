"""The claim's two bulk statements on PostgreSQL (psycopg) with one array parameter per column.

SQLAlchemy's insertmanyvalues sends a claim of 2,000 fires as an ``INSERT ... VALUES`` with
24,000 placeholders, and psycopg parses every such statement again (it caches only short
ones): 27 % of beat's CPU at 5,000 fires a second. Here the statement is short and the same
for every batch (``INSERT ... SELECT FROM unnest(%s::integer[], ...)``), psycopg converts each
column's list to a PostgreSQL array in C, and the published mark is ``id = ANY(%s)``. Rows go
in in the given order (one lock order for every beat); a fire another beat holds is skipped
(``ON CONFLICT DO NOTHING``) and returns nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from models import RunStatus
from models.types import stored_utc

if TYPE_CHECKING:
    from scheduler.store import FireClaim

#: Runs per INSERT (arrays of this length; no placeholder limit applies).
INSERT_ROWS = 5000
#: Ids per UPDATE ... ANY.
UPDATE_IDS = 20000

_INSERT = (
    "INSERT INTO execute_task (task_id, scheduled_at, status, result, finished_at, trace_id, celery_id,"
    " claimed_by, extra, attempt, create_at, update_at)"
    " SELECT t.task_id, t.scheduled_at, t.status, t.result, t.finished_at, t.trace_id, t.celery_id,"
    " %(token)s, '{}', 1, %(now)s, %(now)s"
    " FROM unnest(%(task_id)s::integer[], %(scheduled_at)s::timestamptz[], %(status)s::varchar[],"
    " %(result)s::text[], %(finished_at)s::timestamptz[], %(trace_id)s::varchar[], %(celery_id)s::varchar[])"
    " AS t(task_id, scheduled_at, status, result, finished_at, trace_id, celery_id)"
    " ON CONFLICT (task_id, scheduled_at) DO NOTHING"
    " RETURNING id, trace_id"
)
_MARK = "UPDATE execute_task SET published_at = %(now)s WHERE id = ANY(%(ids)s::bigint[]) AND published_at IS NULL"


def applies(conn: Connection) -> bool:
    """Whether this connection is psycopg (3) on PostgreSQL."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def insert_claims(conn: Connection, claims: Sequence[FireClaim], token: str, now: datetime) -> list[tuple[int, str]]:
    """Insert one run row per claim (in the given order); ``(id, trace_id)`` of the rows inserted."""
    stamp = stored_utc(now, "postgresql")
    pending, skipped = RunStatus.PENDING.value, RunStatus.SKIPPED.value
    out: list[tuple[int, str]] = []
    for start in range(0, len(claims), INSERT_ROWS):
        chunk = claims[start : start + INSERT_ROWS]
        params = {
            "token": token,
            "now": stamp,
            "task_id": [int(c.task_id) for c in chunk],
            "scheduled_at": [stored_utc(c.scheduled_at, "postgresql") for c in chunk],
            "status": [pending if c.skip_reason is None else skipped for c in chunk],
            "result": [c.skip_reason for c in chunk],
            "finished_at": [None if c.skip_reason is None else stamp for c in chunk],
            "trace_id": [c.trace_id for c in chunk],
            "celery_id": [c.celery_id for c in chunk],
        }
        out.extend((int(run_id), str(trace_id)) for run_id, trace_id in conn.exec_driver_sql(_INSERT, params))
    return out


def mark_published(conn: Connection, run_ids: Sequence[int], now: datetime) -> None:
    """``published_at = now`` on these runs not marked yet."""
    stamp = stored_utc(now, "postgresql")
    for start in range(0, len(run_ids), UPDATE_IDS):
        conn.exec_driver_sql(_MARK, {"now": stamp, "ids": [int(i) for i in run_ids[start : start + UPDATE_IDS]]})
