"""Deciding what a due job fires: the misfire and coalescing policy, as pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.rows import ScheduledJob
from scheduler.triggers import DateTrigger

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class PlannedFire:
    """One ``execute_task`` row to claim: a run, or a ``skipped`` record with its reason."""

    job: ScheduledJob
    scheduled_at: datetime
    skip_reason: str | None = None


def first_pending_instant(job: ScheduledJob) -> datetime | None:
    """The first fire after everything already handled: after the last fire and the last edit.

    A date job is the exception: it is due at its date until a fire at that very instant
    was claimed.  Neither its last edit (an SQL "run this now" commits after the date it
    names) nor an earlier fire of the row under another trigger counts; a date already
    past is then run late or recorded ``skipped`` by :func:`plan_due`, never dropped.
    Every beat derives the same instant from the row, so they claim the same keys.
    """
    if isinstance(job.trigger, DateTrigger):
        run_at = job.trigger.run_at
        return None if job.last_run_at == run_at else run_at
    floor = job.anchor if job.last_run_at is None else max(job.anchor, job.last_run_at)
    return job.trigger.next_after(floor)


def plan_due(job: ScheduledJob, now: datetime) -> tuple[list[PlannedFire], datetime | None]:
    """Rows to claim for a job whose ``next_at`` has come, and its following instant.

    Missed instants are coalesced: only the latest one at or before ``now`` can run, late,
    if within ``grace_seconds``; any older missed instants leave one ``skipped`` row.
    """
    due = job.next_at
    if due is None:
        raise ValueError(f"task {job.task_key!r} has no pending instant to plan")
    fire = due
    fires: list[PlannedFire] = []
    if due < now:
        latest = job.trigger.previous_at_or_before(now)
        if latest is not None and latest > due:
            fires.append(
                PlannedFire(
                    job,
                    due,
                    f"misfire: fires from {due.isoformat()} to {(latest - _TICK).isoformat()} "
                    f"were missed and coalesced into {latest.isoformat()}",
                )
            )
            fire = latest
    late_s = (now - fire).total_seconds()
    if late_s > job.grace_seconds:
        fires.append(
            PlannedFire(
                job,
                fire,
                f"misfire: missed by {late_s:.1f}s, more than misfire_grace_seconds={job.grace_seconds}",
            )
        )
    else:
        fires.append(PlannedFire(job, fire))
    return fires, job.trigger.next_after(fire)
