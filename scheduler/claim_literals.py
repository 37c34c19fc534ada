"""The claim's two bulk statements on MariaDB/MySQL (PyMySQL) as literal SQL, one string per batch.

Through SQLAlchemy, a claim of 5,000 fires binds 60,000 values: SQLAlchemy processes each
(insertmanyvalues, the UTC type) and PyMySQL escapes each through its type dispatch, which
was half of ``claim_fires`` in beat's profile at 5,000 fires a second. Here what is the same
for every run of a batch (the beat's token, the claim time, the constants) is escaped once,
and each run adds an integer, a timestamp and two ids escaped by the connection (which knows
the server's ``NO_BACKSLASH_ESCAPES`` mode). The statements are what SQLAlchemy would send;
other backends keep SQLAlchemy's (``scheduler/store.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from models import RunStatus, literal_statements
from models.pymysql_conversions import escape_datetime
from models.types import stored_utc

if TYPE_CHECKING:
    from scheduler.store import FireClaim

#: Runs per INSERT: ~200 bytes each, far inside ``max_allowed_packet`` (16 MiB by default).
INSERT_ROWS = 2000
#: Ids per UPDATE ... IN.
UPDATE_IDS = 5000

_COLUMNS = (
    "task_id, scheduled_at, status, result, finished_at, trace_id, celery_id, claimed_by, extra, attempt,"
    " create_at, update_at"
)
_INSERT = f"INSERT INTO execute_task ({_COLUMNS}) VALUES "
# A duplicate (another beat's claim) is kept as that beat wrote it; RETURNING gives its trace id.
_ON_DUPLICATE = " ON DUPLICATE KEY UPDATE claimed_by = execute_task.claimed_by RETURNING id, trace_id"
#: How ``models.types.stored_utc`` stores a timestamp here (naive UTC).
_DIALECT = "mysql"
#: Literal SQL may hold '%': the driver must not format it as a parameter string.
_NO_PARAMETERS = {"no_parameters": True}


def applies(conn: Connection) -> bool:
    """Whether this connection is PyMySQL on MariaDB/MySQL (the driver whose escaping is used)."""
    return literal_statements.applies(conn.dialect)


def insert_claims(conn: Connection, claims: Sequence[FireClaim], token: str, now: datetime) -> list[tuple[int, str]]:
    """Insert one run row per claim (in the given order); ``(id, trace_id)`` of every row the
    statements returned: this beat's new rows, and another beat's row for a fire it already had."""
    driver: Any = conn.connection.dbapi_connection
    escape = driver.escape
    stamp = escape_datetime(stored_utc(now, _DIALECT))
    pending = f",'{RunStatus.PENDING.value}',NULL,NULL,"
    common = f",{escape(token)},'{{}}',1,{stamp},{stamp})"
    skipped = RunStatus.SKIPPED.value
    out: list[tuple[int, str]] = []
    for start in range(0, len(claims), INSERT_ROWS):
        values = []
        for c in claims[start : start + INSERT_ROWS]:
            middle = pending if c.skip_reason is None else f",'{skipped}',{escape(c.skip_reason)},{stamp},"
            values.append(
                f"({int(c.task_id)},{escape_datetime(stored_utc(c.scheduled_at, _DIALECT))}{middle}"
                f"{escape(c.trace_id)},{escape(c.celery_id)}{common}"
            )
        result = conn.exec_driver_sql(_INSERT + ",".join(values) + _ON_DUPLICATE, execution_options=_NO_PARAMETERS)
        out.extend((int(run_id), str(trace_id)) for run_id, trace_id in result)
    return out


def mark_published(conn: Connection, run_ids: Sequence[int], now: datetime) -> None:
    """``published_at = now`` on these runs not marked yet."""
    stamp = escape_datetime(stored_utc(now, _DIALECT))
    for start in range(0, len(run_ids), UPDATE_IDS):
        ids = ",".join(str(int(i)) for i in run_ids[start : start + UPDATE_IDS])
        conn.exec_driver_sql(
            f"UPDATE execute_task SET published_at = {stamp} WHERE id IN ({ids}) AND published_at IS NULL",
            execution_options=_NO_PARAMETERS,
        )
