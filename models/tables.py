"""tablebeat's tables as SQLAlchemy Core ``Table``s: what beat and the workers build statements from.

The ORM models (``models.schedule``, ``models.execution``, ...) map these same tables for the API
and CLI.  Beat and the workers import only this module: the ORM is 5-6 MiB resident and about a
tenth of a second of beat's start, for nothing they use.  Columns a model types as not ``Optional``
are ``nullable=False`` here, as the typed ``mapped_column`` made them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, UniqueConstraint, func

from models.states import RunStatus
from models.types import UTCDateTime

metadata = MetaData()

#: Columns of ``task`` an operator edits; a change to any of them is a schedule change.
CONFIG_COLUMNS: tuple[str, ...] = (
    "task_key",
    "desc",
    "execute_func",
    "trigger",
    "spec",
    "args",
    "kwargs",
    "is_valid",
    "timezone",
    "queue",
    "max_instances",
    "misfire_grace_seconds",
    "expires_seconds",
    "extra",
    "trigger_args",
    "start_date",
    "end_date",
    "jitter_seconds",
    "cron_year",
    "cron_week",
)

#: A scheduled job, one row per task; column names of the original schema are kept.
task_table = Table(
    "task",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_key", String(255), unique=True, nullable=False),
    Column("desc", String(255), default="", server_default="", nullable=False),
    Column("execute_func", String(255)),
    Column("trigger", String(255)),
    Column("spec", String(255)),
    Column("args", Text, default=""),
    Column("is_valid", Integer, default=1, server_default="1", nullable=False),
    Column("status", String(255), default="ready", server_default="ready", nullable=False),
    Column("extra", Text, default="{}"),
    Column("create_at", UTCDateTime, server_default=func.current_timestamp()),
    Column("update_at", UTCDateTime, server_default=func.current_timestamp()),
    Column("kwargs", Text, default="{}"),
    Column("timezone", String(64)),
    Column("queue", String(255)),
    Column("max_instances", Integer, default=1, server_default="1", nullable=False),
    Column("misfire_grace_seconds", Integer),
    Column("expires_seconds", Integer),
    Column("next_run_at", UTCDateTime),
    Column("last_run_at", UTCDateTime),
    Column("last_status", String(32)),
    Column("last_error", Text),
    # APScheduler-style trigger arguments exactly as given (JSON), next to the compiled trigger/spec.
    Column("trigger_args", Text),
    # APScheduler's trigger options, honoured by beat (scheduler.trigger_window), migration 0006.
    Column("start_date", UTCDateTime),
    Column("end_date", UTCDateTime),
    Column("jitter_seconds", Integer),
    Column("cron_year", String(64)),
    Column("cron_week", String(64)),
    Index("ix_task_update_at", "update_at"),
    Index("ix_task_status", "status"),
    Index("ix_task_next_run_at", "next_run_at"),
    # Also ix_task_queue_note (migration 0009: partial on PostgreSQL/SQLite, a prefix on MySQL), not
    # declared here: dialect options on an Index import every dialect named (~0.1 s of beat's start).
    # Ids are never reused: a deleted task's runs must never show up under a new task.
    sqlite_autoincrement=True,
)

#: Change log of ``task``, appended by database triggers on every config edit; beat reads it with a
#: primary-key range probe, so finding "nothing changed" costs one index lookup however many tasks.
task_change_table = Table(
    "task_change",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("task_id", Integer, nullable=False),
    Column("changed_at", UTCDateTime, server_default=func.current_timestamp()),
)

#: One run of a task: claimed by beat (``pending``), then moved on by the worker.
execute_task_table = Table(
    "execute_task",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("task_id", Integer, nullable=False),
    Column("status", String(255), default=RunStatus.PENDING.value, nullable=False),
    Column("extra", Text, default="{}"),
    Column("trace_id", String(255)),
    Column("create_at", UTCDateTime, server_default=func.current_timestamp()),
    Column("update_at", UTCDateTime, server_default=func.current_timestamp()),
    Column("scheduled_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("published_at", UTCDateTime),
    Column("worker", String(255)),
    Column("celery_id", String(64)),
    Column("result", Text),
    Column("error", Text),
    Column("attempt", Integer, default=1, server_default="1", nullable=False),
    Column("claimed_by", String(64)),
    # 1..max_instances while running, NULL otherwise; unique per task (see migration 0003).
    Column("running_slot", Integer),
    UniqueConstraint("task_id", "scheduled_at", name="uq_execute_task_fire"),
    Index("ix_execute_task_trace_id", "trace_id"),
    Index("ix_execute_task_status", "status", "task_id"),
    # Housekeeping's sweeps of pending runs read only their candidates (old, or unpublished), not the
    # whole backlog of runs no worker has taken yet (migration 0011).
    Index("ix_execute_task_status_scheduled", "status", "scheduled_at", "published_at"),
    Index("ix_execute_task_created", "create_at"),
    Index("ix_execute_task_claimed", "claimed_by", "published_at"),
    Index("uq_execute_task_running_slot", "task_id", "running_slot", unique=True),
)

#: One running beat process, stamped while it lives (``models.beats.BeatNode``).
beat_node_table = Table(
    "beat_node",
    metadata,
    Column("token", String(64), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
)

#: How far the change log has been applied (``models.beats.ScheduleCursor``).
schedule_cursor_table = Table(
    "schedule_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("change_id", BigInteger),
)

#: Last time a worker (Celery hostname) proved it was alive.
worker_heartbeat_table = Table(
    "worker_heartbeat",
    metadata,
    Column("hostname", String(255), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    # Comma-separated names of the queues the worker consumes (NULL: not known, e.g. an older worker).
    Column("queues", Text, nullable=True),
)

#: Per-task rate limit of run alerts (``models.alerts.AlertState``).
alert_state_table = Table(
    "alert_state",
    metadata,
    Column("task_id", Integer, primary_key=True, autoincrement=False),
    Column("last_sent_at", UTCDateTime),
    Column("suppressed", Integer, default=0, server_default="0", nullable=False),
)
