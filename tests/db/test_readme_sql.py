"""The README's "Managing jobs with plain SQL" section, run as written on SQLite, MariaDB and PostgreSQL.

Each statement is taken from the README; the dialect variants are the ones the README gives
right below its SQL block. After each edit the service (what the API and CLI show) must read
the row as the README says: schedulable, paused, resumed, gone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from conf.settings import Settings
from service.errors import TaskNotFound
from service.tasks import TaskService

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Managing jobs with plain SQL", 1)[1].split("\n## ", 1)[0]
MYSQL_RUN_NOW = "spec = CONCAT(UTC_TIMESTAMP(), '+00:00')"


def _statements() -> list[str]:
    block = re.search(r"```sql\n(.*?)```", SECTION, re.S)
    assert block, "the README has no SQL block under 'Managing jobs with plain SQL'"
    lines = [line.split("--", 1)[0].rstrip() for line in block.group(1).splitlines()]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


def _variant(dialect: str) -> str:
    """The README's "run it now" assignment for ``dialect`` (the sentence after the block)."""
    found = re.search(dialect + r".*?`(spec = [^`]+)`", " ".join(SECTION.split()))
    assert found, f"the README gives no 'run it now' for {dialect}"
    return found.group(1)


def _for(kind: str, statement: str) -> str:
    if kind == "sqlite":
        return statement.replace(MYSQL_RUN_NOW, _variant("SQLite"))
    if kind == "postgresql":
        return statement.replace(MYSQL_RUN_NOW, _variant("PostgreSQL")).replace("`", '"')
    return statement


@pytest.fixture
def service(migrated_url: str) -> Iterator[TaskService]:
    running = TaskService(Settings(database_url=migrated_url, broker_url="memory://"))
    yield running
    running.close()


def test_statements_are_found() -> None:
    statements = _statements()
    assert len(statements) == 10, statements
    assert MYSQL_RUN_NOW in statements[3]


def test_readme_sql_works_as_written(db_kind: str, migrated_url: str, service: TaskService) -> None:
    engine = create_engine(migrated_url)
    try:
        with engine.begin() as conn:
            results = [conn.execute(text(_for(db_kind, stmt))) for stmt in _statements()[:3]]
        for key in ("report", "standup", "once"):
            view = service.get_task(key)
            assert view.schedule_error is None, (key, view.schedule_error)
            assert view.next_fire_times, key
        standup = service.get_task("standup")
        # 09:00 Monday to Friday in Shanghai is 01:00 UTC
        assert {(t.hour, t.minute, t.weekday() < 5) for t in standup.next_fire_times} == {(1, 0, True)}
        assert standup.kwargs == {"channel": "#team"}
        assert standup.args == '"guess","hello"'
        assert service.get_task("report").spec == "5"

        statements = _statements()[3:]
        checks = [
            lambda: _fires_about_now(service),
            lambda: service.get_task("report").spec in ("90s", "90"),
            lambda: service.get_task("report").is_valid is False,
            lambda: service.get_task("report").is_valid is True,
            lambda: _gone(service, "report"),
        ]
        for statement, check in zip(statements, checks, strict=False):
            with engine.begin() as conn:
                conn.execute(text(_for(db_kind, statement)))
            assert check(), statement
        with engine.connect() as conn:
            results = [conn.execute(text(_for(db_kind, stmt))).all() for stmt in statements[len(checks) :]]
        assert sorted(row[0] for row in results[0]) == ["once", "standup"]
        assert results[1] == []  # task 1 (report) is deleted, and it never ran
    finally:
        engine.dispose()


def _fires_about_now(service: TaskService) -> bool:
    """The run-now UPDATE left a date of now: schedulable, within the misfire grace."""
    view = service.get_task("once")
    spec = datetime.fromisoformat(view.spec)
    return view.schedule_error is None and abs(spec - datetime.now(UTC)) < timedelta(seconds=30)


def _gone(service: TaskService, key: str) -> bool:
    try:
        service.get_task(key)
    except TaskNotFound:
        return True
    return False
