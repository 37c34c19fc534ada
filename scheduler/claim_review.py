"""A change wins over a claim: what beat does with its claimed, unpublished fires of a task
that was paused, deleted or edited (issue 9 item 3).

Beat claims fires up to ``lookahead_seconds`` ahead and builds their messages then.  When it
applies a change of a task it holds such claims for, each claim is

- **cancelled** (row ``skipped``, result ``paused: …``/``deleted: …``/``rescheduled: …``, never
  published) when the task is gone, disabled, or its new schedule has no fire at that instant;
- **rebuilt** with the new job, args and kwargs when the new schedule still fires at that instant;
- kept as it is when the task's config did not change.

Claims whose message is already out are the worker's business: its guarded start checks the
task's config stamp (``workers.message_match``).  Each beat reviews only its own claims; every
beat applies every change, so every claim is reviewed by its holder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, or_, select, update

from models import RunStatus
from models.tables import execute_task_table, task_table
from scheduler.dispatch import Dispatch
from scheduler.planning import first_pending_instant
from scheduler.rows import ScheduledJob

logger = logging.getLogger("tablebeat.beat")

_TICK = timedelta(microseconds=1)
PAUSED = "paused: the task was paused after this fire was claimed"
DELETED = "deleted: the task was deleted after this fire was claimed"
RESCHEDULED = "rescheduled: the task's schedule changed after this fire was claimed and no longer fires then"


@dataclass(slots=True)
class ClaimReview:
    """The verdict on one beat's claims of changed tasks."""

    #: run id -> reason: recorded ``skipped``, never published.
    cancelled: dict[int, str] = field(default_factory=dict)
    #: run id -> the fire's message rebuilt from the task's new config.
    rebuilt: dict[int, Dispatch] = field(default_factory=dict)


def review_claims(
    conn: Connection, claims: Sequence[Dispatch], changed: Iterable[int], jobs: Mapping[int, ScheduledJob]
) -> ClaimReview:
    """Judge ``claims`` (this beat's unpublished ones) against the tasks in ``changed``.

    ``jobs``: the changed tasks that are enabled and valid, compiled from their rows now.
    """
    changed = set(changed)
    mine = [c for c in claims if c.task_id in changed]
    review = ClaimReview()
    if not mine:
        return review
    enabled = _enabled_by_id(conn, {c.task_id for c in mine if c.task_id is not None and c.task_id not in jobs})
    for claim in mine:
        task_id = int(claim.task_id or 0)
        job = jobs.get(task_id)
        if job is not None and claim.config_at == job.anchor:
            continue
        if job is None:
            state = enabled.get(task_id)
            # Enabled but not scheduled: the row is in error (or a date that has fired) -- its schedule changed.
            review.cancelled[claim.run_id] = DELETED if state is None else PAUSED if state != 1 else RESCHEDULED
            continue
        if job.trigger.next_after(claim.scheduled_at - _TICK) == claim.scheduled_at:
            review.rebuilt[claim.run_id] = Dispatch.for_job(
                job, claim.run_id, claim.trace_id, claim.celery_id, claim.scheduled_at, scheduled=True
            )
        else:
            review.cancelled[claim.run_id] = RESCHEDULED
    return review


def _enabled_by_id(conn: Connection, task_ids: set[int]) -> dict[int, int]:
    """``is_valid`` of the rows with these ids that still exist."""
    if not task_ids:
        return {}
    rows = conn.execute(select(task_table.c.id, task_table.c.is_valid).where(task_table.c.id.in_(sorted(task_ids))))
    return {int(r.id): int(r.is_valid) if r.is_valid is not None else 0 for r in rows}


def skip_claims(conn: Connection, cancelled: Mapping[int, str], now: datetime) -> list[int]:
    """Record cancelled claims ``skipped`` with their reason (only while still pending and unpublished)."""
    done: list[int] = []
    by_reason: dict[str, list[int]] = {}
    for run_id, reason in cancelled.items():
        by_reason.setdefault(reason, []).append(run_id)
    for reason, ids in by_reason.items():
        moved = conn.execute(
            update(execute_task_table)
            .where(
                execute_task_table.c.id.in_(sorted(ids)),
                execute_task_table.c.status == RunStatus.PENDING.value,
                execute_task_table.c.published_at.is_(None),
            )
            .values(status=RunStatus.SKIPPED.value, result=reason, finished_at=now)
        ).rowcount
        if moved:
            done.extend(ids)
    return done


def rewind_last_run(conn: Connection, task_ids: Iterable[int], jobs: Mapping[int, ScheduledJob]) -> int:
    """Point ``last_run_at`` of tasks whose claims were cancelled back to their latest fire that was
    not cancelled, and ``next_run_at`` to the first fire after it (and after the edit).

    The claims set ``last_run_at`` up to ``lookahead`` ahead; left there, the new schedule (or a
    resume) would skip the instants the cancelled claims covered.  Guarded on ``last_run_at`` still
    being what was read, so a concurrent claim is never undone.  Returns rows written.
    """
    cancelled = (PAUSED, DELETED, RESCHEDULED)
    written = 0
    for task_id in sorted(set(task_ids)):
        row = conn.execute(select(task_table.c.last_run_at).where(task_table.c.id == task_id)).first()
        if row is None:
            continue
        latest = conn.scalar(
            select(func.max(execute_task_table.c.scheduled_at)).where(
                execute_task_table.c.task_id == task_id,
                or_(
                    execute_task_table.c.status != RunStatus.SKIPPED.value,
                    execute_task_table.c.result.is_(None),
                    ~or_(*(execute_task_table.c.result == reason for reason in cancelled)),
                ),
            )
        )
        if latest == row.last_run_at:
            continue
        values: dict[str, object] = {"last_run_at": latest, "update_at": task_table.c.update_at}
        job = jobs.get(task_id)
        if job is not None:
            job.last_run_at = latest
            values["next_run_at"] = first_pending_instant(job)
        guard = (
            task_table.c.last_run_at.is_(None)
            if row.last_run_at is None
            else task_table.c.last_run_at == row.last_run_at
        )
        written += (
            conn.execute(update(task_table).where(task_table.c.id == task_id, guard).values(**values)).rowcount or 0
        )
    return written
