"""The worker's hot statements: literal SQL on PyMySQL (models/literal_statements.py), the fresh start
joined to its task on MariaDB, and the finish written per shape of outcome.

Each is compared with what it replaces: the text PyMySQL itself would send for the same values
(quotes, backslashes, percent signs, non-ASCII, datetimes; MariaDB's ``NO_BACKSLASH_ESCAPES`` mode
too), and the rows the EXISTS start and the COALESCE/CASE finish leave, on every database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from models import ExecuteTask, RunStatus, Task, make_engine
from models.literal_statements import LiteralStatement
from models.raw_statements import RawStatement
from tests.conftest import migrated_database
from tests.unit.test_slots import add_task_with_runs
from workers.message_match import config_stamp
from workers.runs import (
    _START_FRESH_RUN_NOW,
    _START_FRESH_SCHEDULED,
    _START_FRESH_SCHEDULED_JOINED,
    _finish_statement,
    _HotStatements,
)

ODD_TEXTS = ["it's 50% done", "back\\slash \\' and \\\\", "zeit überschritten ✓", "%(x)s %s", '"double"\n', ""]
WHEN = datetime(2026, 11, 30, 12, 0, 0, 250001, tzinfo=UTC)
ROW = (
    ExecuteTask.status,
    ExecuteTask.worker,
    ExecuteTask.celery_id,
    ExecuteTask.running_slot,
    ExecuteTask.result,
    ExecuteTask.error,
    ExecuteTask.attempt,
)


@pytest.fixture
def mariadb() -> Iterator[Engine]:
    with migrated_database("mariadb") as url:
        eng = make_engine(url)
        yield eng
        eng.dispose()


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


def _autocommit(engine: Engine) -> Engine:
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@pytest.mark.mariadb
@pytest.mark.parametrize("sql_mode", [None, "NO_BACKSLASH_ESCAPES"])
@pytest.mark.parametrize("odd", ODD_TEXTS)
def test_the_literal_text_is_what_pymysql_would_send(mariadb: Engine, sql_mode: str | None, odd: str) -> None:
    """Per-call texts, ints, None and aware datetimes render as PyMySQL renders the bound parameters."""
    statement = _START_FRESH_SCHEDULED_JOINED
    raw = RawStatement(statement, mariadb.dialect)
    literal = LiteralStatement(statement, mariadb.dialect)
    values: dict[str, Any] = {
        "b_id": 12,
        "b_worker": odd,
        "b_celery": odd + "-c",
        "b_slot": None,
        "m_trace": odd.upper(),
        "m_task": 7,
        "m_job": "job " + odd,
        "m_lo": WHEN,
        "m_hi": WHEN.astimezone(UTC) + timedelta(microseconds=1),
    }
    with mariadb.connect() as conn:
        if sql_mode is not None:
            conn.exec_driver_sql(f"SET SESSION sql_mode = '{sql_mode}'")
            conn.exec_driver_sql("SELECT 1")  # the server reports the mode with its next reply
        driver = conn.connection.dbapi_connection
        assert driver is not None
        expected = driver.cursor().mogrify(raw.sql, raw.parameters(values))
        assert literal.literal_sql(driver.escape, values) == expected
        if sql_mode is not None:
            conn.exec_driver_sql("SET SESSION sql_mode = DEFAULT")


@pytest.mark.mariadb
def test_a_constant_that_is_not_plain_text_is_escaped_per_call(mariadb: Engine) -> None:
    stmt = update(ExecuteTask.__table__).where(ExecuteTask.id == 1).values(result="it's 100%")
    raw, literal = RawStatement(stmt, mariadb.dialect), LiteralStatement(stmt, mariadb.dialect)
    assert "100" not in literal._template
    with mariadb.connect() as conn:
        driver = conn.connection.dbapi_connection
        assert driver is not None
        assert literal.literal_sql(driver.escape, {}) == driver.cursor().mogrify(raw.sql, raw.parameters({}))


def test_the_literal_statement_refuses_other_drivers() -> None:
    from sqlalchemy.dialects import postgresql

    with pytest.raises(ValueError, match="PyMySQL"):
        LiteralStatement(_START_FRESH_RUN_NOW, postgresql.dialect())


def _start_values(run_id: int, task_id: int, job: str = "job", **more: Any) -> dict[str, Any]:
    return {
        "b_id": run_id,
        "b_worker": "w1",
        "b_celery": f"c{run_id}",
        "b_slot": 1,
        "m_trace": f"t{run_id}",
        "m_task": task_id,
        "m_job": job,
        **more,
    }


def _rows(engine: Engine, run_ids: list[int]) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(conn.execute(select(*ROW).where(ExecuteTask.id == r)).one()) for r in run_ids]


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("case", "moves"),
    [("same", True), ("other job", False), ("paused", False), ("edited", False), ("edited after the fire", True)],
)
def test_the_joined_start_matches_what_the_exists_start_matches(mariadb: Engine, case: str, moves: bool) -> None:
    """Two runs of one task, one started through each statement: same rowcount, same row."""
    joined = _HotStatements(mariadb.dialect).start_scheduled
    assert isinstance(joined, LiteralStatement)
    exists = RawStatement(_START_FRESH_SCHEDULED, mariadb.dialect)
    task_id, run_ids = add_task_with_runs(mariadb, 2, 2)
    scheduled = (
        datetime(2000, 1, 1, tzinfo=UTC) if case == "edited after the fire" else datetime(2100, 1, 1, tzinfo=UTC)
    )
    with mariadb.begin() as conn:
        for n, run_id in enumerate(run_ids):  # the fire's instant: after, or before, the task's last edit
            at = scheduled + timedelta(seconds=n)
            conn.execute(update(ExecuteTask).where(ExecuteTask.id == run_id).values(scheduled_at=at))
        stamp = conn.scalar(select(config_stamp()).where(Task.id == task_id))
        if case == "paused":
            conn.execute(update(Task).where(Task.id == task_id).values(is_valid=0))
    assert stamp is not None
    stamp = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    claimed_with = stamp - timedelta(seconds=5) if case.startswith("edited") else stamp
    outcomes = []
    for slot, (stmt, run_id) in enumerate(zip((joined, exists), run_ids, strict=True), start=1):
        values = _start_values(
            run_id,
            task_id,
            job="other" if case == "other job" else "job",
            b_slot=slot,
            m_lo=claimed_with - timedelta(milliseconds=1),
            m_hi=claimed_with + timedelta(milliseconds=1),
        )
        with _autocommit(mariadb).connect() as conn:
            outcomes.append(stmt.execute(conn.connection, values))
    assert outcomes == [int(moves), int(moves)]
    first, second = _rows(mariadb, run_ids)
    assert first[0] == second[0] == ("running" if moves else "pending")
    assert (first[1], first[4:]) == (second[1], second[4:])  # celery id and slot differ by run
    assert (first[3], second[3]) == ((1, 2) if moves else (None, None))


@pytest.mark.parametrize("result", [None, "42", "it's 50% \\ done"])
@pytest.mark.parametrize("error", [None, "Traceback: boom ✓"])
@pytest.mark.parametrize("status", [RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.RETRYING])
def test_each_finish_shape_writes_what_the_general_finish_writes(
    engine: Engine, result: str | None, error: str | None, status: RunStatus
) -> None:
    """``finish_mine`` per (result, error, final) against the COALESCE/CASE finish, on rows that
    already hold a result, an error and a finish time (a retried run)."""
    task_id, run_ids = add_task_with_runs(engine, 0, 2)
    earlier = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            update(ExecuteTask)
            .where(ExecuteTask.id.in_(run_ids))
            .values(
                status="running",
                worker="w1",
                attempt=2,
                result="old result",
                error="old error",
                finished_at=earlier,
            )
        )
    final = status is not RunStatus.RETRYING
    params = {
        "b_status": status.value,
        "b_result": result,
        "b_error": error,
        "b_final": final,
        "b_attempt": 2,
        "b_worker": "w1",
    }
    hot = _HotStatements(engine.dialect).finish_mine(result is not None, error is not None, final)
    with _autocommit(engine).connect() as conn:
        assert hot.execute(conn.connection, {**params, "b_id": run_ids[0]}) == 1
        general = _finish_statement(2, "w1", None)
        assert conn.execute(general, {**params, "b_id": run_ids[1]}).rowcount == 1
    assert _rows(engine, run_ids[:1]) == _rows(engine, run_ids[1:])
    with engine.connect() as conn:
        finished = [conn.scalar(select(ExecuteTask.finished_at).where(ExecuteTask.id == r)) for r in run_ids]
    stored = [f if f is None or f.tzinfo else f.replace(tzinfo=UTC) for f in finished]
    if final:
        assert all(f is not None and f > earlier for f in stored)
    else:
        assert stored == [earlier, earlier]
