"""CLI output for scripts: nothing wraps when stdout is not a terminal; error rows say why."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from cli.main import app
from models import Task
from tests.api.ops_env import ago, insert_run
from tests.cli.conftest import Invoke
from tests.cli.test_task_cli import add, task_row

pytestmark = pytest.mark.mariadb

TRACE = "0123456789abcdef0123456789abcdef"
LONG_ERROR = "RuntimeError: " + "upstream answered 503 " * 8


@pytest.fixture
def piped(tablebeat: Invoke, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """``tablebeat`` with no COLUMNS: what a script piping the output sees (CliRunner is not a terminal)."""
    monkeypatch.delenv("COLUMNS")
    return tablebeat


def test_piped_output_keeps_each_value_on_one_line(piped: Invoke, engine: Engine) -> None:
    add(piped, "piped-task", "--desc", "a task with a rather long description to widen the table")
    task_id = task_row(engine, "piped-task").id
    at = ago(seconds=30)
    insert_run(engine, task_id, "failed", at, started_at=at, finished_at=at, trace_id=TRACE, error=LONG_ERROR)
    for argv in (("task", "logs", "piped-task"), ("task", "show", "piped-task")):
        result = piped(*argv)
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert any(TRACE in line and LONG_ERROR.strip() in line for line in lines), result.stdout
        assert max(len(line) for line in lines) > 80  # wider than the 80 columns Rich assumes for a pipe


def test_json_for_list_show_and_logs(piped: Invoke, engine: Engine) -> None:
    add(piped, "scripted")
    task_id = task_row(engine, "scripted").id
    insert_run(engine, task_id, "success", ago(seconds=5), trace_id=TRACE, result="'ok'")
    listed = json.loads(piped("task", "list", "--json").stdout)
    shown = json.loads(piped("task", "show", "scripted", "--json").stdout)
    logged = json.loads(piped("task", "logs", "scripted", "--json").stdout)
    assert [t["task_key"] for t in listed["items"]] == ["scripted"]
    assert shown["task"]["id"] == task_id and shown["last_runs"][0]["trace_id"] == TRACE
    assert logged["total"] == 1 and logged["items"][0]["result"] == "'ok'"


def test_list_status_error_shows_the_reason(piped: Invoke, engine: Engine) -> None:
    add(piped, "healthy")
    add(piped, "broken")
    reason = "spec: cron field 'minute' value 61 is out of range 0-59"
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.task_key == "broken").values(status="error", last_error=reason))
    errors = piped("task", "list", "--status", "error")
    assert errors.exit_code == 0, errors.output
    row = next(line for line in errors.stdout.splitlines() if "broken" in line)
    assert reason in row and "reason" in errors.stdout and "healthy" not in errors.stdout
    assert "reason" not in piped("task", "list", "--status", "ready").stdout  # no column when no row has one


def test_db_upgrade_prints_one_line(mariadb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    result = CliRunner().invoke(app, ["db", "upgrade", "--url", mariadb_url])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1, result.stdout
    assert "already at revision" in result.stdout and "tb_test_" in result.stdout


def test_db_upgrade_of_an_empty_database_names_both_revisions(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    url = f"sqlite:///{tmp_path / ('a-rather-long-directory-name-' * 3)}.db"
    result = CliRunner().invoke(app, ["db", "upgrade", "--url", url])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 and "upgraded from revision (empty) to" in result.stdout
