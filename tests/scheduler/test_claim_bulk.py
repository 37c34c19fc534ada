"""scheduler/claim_literals.py (MariaDB) and claim_arrays.py (PostgreSQL): the bulk claim and publish
mark write what SQLAlchemy's statements write.

On each server each batch is claimed twice into fresh rows, once through the bulk statements
and once through SQLAlchemy's, and every column of the two results must agree; texts with
quotes, backslashes, percent signs and non-ASCII characters, and MariaDB's
``NO_BACKSLASH_ESCAPES`` mode, included.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from models import make_engine
from scheduler import claim_arrays, claim_literals, store
from tests.conftest import migrated_database
from tests.scheduler.test_sql_scheduler import add_task

T0 = datetime(2026, 11, 30, 12, 0, 0, 250000, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 11, 59, 58, 5, tzinfo=UTC)
ODD_TEXTS = ["it's 50% done", "back\\slash \\' and \\\\", "zeit überschritten ✓", "%(x)s %s", '"double"\n']
COLUMNS = (
    "task_id, scheduled_at, status, result, finished_at, trace_id, celery_id, claimed_by, extra, attempt,"
    " create_at, update_at, published_at, started_at, worker, error, running_slot"
)


SERVERS = [
    pytest.param(("mariadb", claim_literals), marks=pytest.mark.mariadb, id="mariadb"),
    pytest.param(("postgresql", claim_arrays), marks=pytest.mark.postgresql, id="postgresql"),
]


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[Engine, Any]]:
    """An engine on a fresh migrated database, and the bulk module that serves it."""
    kind, module = request.param
    with migrated_database(kind) as url:
        eng = make_engine(url)
        yield eng, module
        eng.dispose()


def _claims(task_id: int, count: int, salt: str) -> list[store.FireClaim]:
    return [
        store.FireClaim(
            task_id,
            T0 + timedelta(seconds=i),
            trace_id=f"{salt}{i:030x}",
            celery_id=f"{salt}-celery-{i}",
            skip_reason=ODD_TEXTS[i % len(ODD_TEXTS)] if i % 3 == 0 else None,
        )
        for i in range(count)
    ]


def _claim(
    server: tuple[Engine, Any], claims: list[store.FireClaim], token: str, bulk: bool, sql_mode: str | None = None
) -> dict[str, int]:
    """Claim through the bulk module (``bulk``) or through SQLAlchemy's statements (the module
    told it does not apply)."""
    engine, module = server
    with engine.begin() as conn:
        if sql_mode is not None:
            conn.exec_driver_sql(f"SET SESSION sql_mode = '{sql_mode}'")
        assert module.applies(conn)
        original = module.applies
        if not bulk:
            module.applies = lambda _conn: False
        try:
            return store.claim_fires(conn, claims, token, NOW)
        finally:
            module.applies = original
            if sql_mode is not None:
                conn.exec_driver_sql("SET SESSION sql_mode = DEFAULT")


def _rows(engine: Engine, task_id: int) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT {COLUMNS} FROM execute_task WHERE task_id = :t ORDER BY scheduled_at"), {"t": task_id}
        ).all()
    return [tuple(r)[1:] for r in rows]  # without task_id: the two batches are claimed for two tasks


@pytest.mark.parametrize("sql_mode", [None, "NO_BACKSLASH_ESCAPES"])
def test_bulk_claim_writes_what_sqlalchemy_writes(server: tuple[Engine, Any], sql_mode: str | None) -> None:
    engine, module = server
    if sql_mode is not None and module is not claim_literals:
        pytest.skip("a MariaDB session mode")
    by_literal = add_task(engine, "by_literal", "test_interval", "interval", "1")
    by_orm = add_task(engine, "by_orm", "test_interval", "interval", "1")
    count = module.INSERT_ROWS + 7  # two statements
    token = "host:1:it's"
    won_literal = _claim(server, _claims(by_literal, count, "a"), token, True, sql_mode)
    won_orm = _claim(server, _claims(by_orm, count, "a"), token, False, sql_mode)
    assert len(won_literal) == len(won_orm) == count
    literal_rows, orm_rows = _rows(engine, by_literal), _rows(engine, by_orm)
    assert literal_rows == orm_rows
    # The texts are kept byte for byte.
    assert [r[2] for r in literal_rows[::3]] == [ODD_TEXTS[i % len(ODD_TEXTS)] for i in range(0, count, 3)]


def test_a_fire_another_beat_claimed_is_not_won(server: tuple[Engine, Any]) -> None:
    engine = server[0]
    task_id = add_task(engine, "shared", "test_interval", "interval", "1")
    first = _claim(server, _claims(task_id, 5, "a"), "beat-a", True)
    again = _claims(task_id, 8, "b")  # the first five are beat-a's
    second = _claim(server, again, "beat-b", True)
    assert set(second) == {c.trace_id for c in again[5:]}
    assert not set(first.values()) & set(second.values())
    with engine.connect() as conn:
        owners = dict(conn.execute(text("SELECT trace_id, claimed_by FROM execute_task")).all())
    assert all(owners[t] == "beat-a" for t in first) and all(owners[t] == "beat-b" for t in second)


def test_mark_published_marks_each_run_once(server: tuple[Engine, Any]) -> None:
    engine, module = server
    task_id = add_task(engine, "published", "test_interval", "interval", "1")
    ids = sorted(_claim(server, _claims(task_id, module.UPDATE_IDS + 3, "p"), "me", True).values())
    first, later = datetime(2026, 11, 30, 12, 0, 1, 123456, tzinfo=UTC), datetime(2026, 11, 30, 12, 0, 9, tzinfo=UTC)
    with engine.begin() as conn:
        store.mark_published(conn, ids[:10], first)
    with engine.begin() as conn:
        store.mark_published(conn, ids, later)
    with engine.connect() as conn:
        marks = {i: _utc(at) for i, at in conn.execute(text("SELECT id, published_at FROM execute_task"))}
    assert {marks[i] for i in ids[:10]} == {first}
    assert {marks[i] for i in ids[10:]} == {later}


def _utc(value: datetime) -> datetime:
    # MariaDB gives naive UTC, PostgreSQL aware values.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
