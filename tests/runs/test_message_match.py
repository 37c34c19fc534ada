"""Why a refused start was refused (``workers.message_match.refusal``), as a pure function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.message_match import Refusal, RowFacts, RunMessage, refusal

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
STAMP = T0 - timedelta(hours=1)


def facts(**changes: object) -> RowFacts:
    values: dict[str, object] = {
        "task_id": 7,
        "trace_id": "t" * 32,
        "status": "pending",
        "attempt": 1,
        "scheduled_at": T0,
        "task_exists": True,
        "execute_func": "job",
        "is_valid": 1,
        "stamp": STAMP,
    }
    values.update(changes)
    return RowFacts(**values)  # type: ignore[arg-type]


def message(**changes: object) -> RunMessage:
    values: dict[str, object] = {
        "run_id": 1,
        "trace_id": "t" * 32,
        "job_name": "job",
        "task_id": 7,
        "config_at": STAMP,
    }
    values.update(changes)
    return RunMessage(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("msg", "row", "expected"),
    [
        pytest.param(message(), facts(), None, id="its-own-run"),
        pytest.param(message(trace_id=None), facts(), Refusal.FORGED, id="no-trace"),
        pytest.param(message(trace_id="x" * 32), facts(), Refusal.FORGED, id="other-trace"),
        pytest.param(message(task_id=8), facts(), Refusal.FORGED, id="other-task"),
        pytest.param(message(job_name="always_fails"), facts(), Refusal.FORGED, id="other-job"),
        pytest.param(message(), facts(task_exists=False), Refusal.DELETED, id="deleted"),
        pytest.param(message(), facts(is_valid=0), Refusal.PAUSED, id="paused"),
        pytest.param(message(), facts(stamp=T0 - timedelta(seconds=1)), Refusal.RESCHEDULED, id="edited-before"),
        pytest.param(message(), facts(stamp=T0 + timedelta(seconds=1)), None, id="edited-after-instant"),
        pytest.param(
            message(),
            facts(stamp=T0 - timedelta(seconds=1), execute_func="other"),
            Refusal.RESCHEDULED,
            id="job-edited",
        ),
        pytest.param(message(), facts(stamp=STAMP + timedelta(microseconds=900)), None, id="within-tolerance"),
        pytest.param(message(config_at=None), facts(is_valid=0), None, id="run-now-of-paused-task"),
        pytest.param(message(), facts(status="retrying", attempt=2, is_valid=0), None, id="retry-not-cancelled"),
        pytest.param(message(manual=True, task_id=None, job_name="x"), facts(task_exists=False), None, id="manual-run"),
    ],
)
def test_refusal(msg: RunMessage, row: RowFacts, expected: Refusal | None) -> None:
    fresh = row.status == "pending" and row.attempt == 1
    verdict = refusal(msg, row, fresh=fresh)
    assert (verdict[0] if verdict else None) is expected, verdict
