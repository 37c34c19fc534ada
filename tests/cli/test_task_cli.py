"""``tablebeat task ...`` and ``tablebeat prune``: every verb, success and failure (MariaDB + Redis)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis
from sqlalchemy import Engine, select

from models import ExecuteTask, Task
from tests.api.ops_env import ago, insert_run
from tests.cli.conftest import Invoke

pytestmark = pytest.mark.mariadb


def add(tablebeat: Invoke, key: str, *extra: str) -> None:
    result = tablebeat("task", "add", key, "--func", "test_interval", "--trigger", "interval", "--spec", "5", *extra)
    assert result.exit_code == 0, result.output


def task_row(engine: Engine, key: str) -> Task | None:
    with engine.connect() as conn:
        return conn.execute(select(Task).where(Task.task_key == key)).first()


# --- add ---------------------------------------------------------------------------------------------


def test_add_with_spec_prints_next_fires(tablebeat: Invoke, engine: Engine) -> None:
    result = tablebeat(
        "task",
        "add",
        "report",
        "-f",
        "test_interval",
        "-t",
        "interval",
        "-s",
        "90s",
        "--args",
        "1,2,3",
        "--kwargs",
        '{"channel": "#ops"}',
        "--desc",
        "nightly",
    )
    assert result.exit_code == 0, result.output
    assert "added task" in result.stdout and "report" in result.stdout and "interval 90" in result.stdout
    assert result.stdout.count("20") >= 5 and "next fire times (UTC)" in result.stdout
    row = task_row(engine, "report")
    assert (row.spec, row.args, row.kwargs, row.desc, row.is_valid) == (
        "90",
        "1,2,3",
        '{"channel": "#ops"}',
        "nightly",
        1,
    )


def test_add_with_trigger_args_and_paused(tablebeat: Invoke, engine: Engine) -> None:
    result = tablebeat(
        "task",
        "add",
        "standup",
        "-f",
        "test_cron",
        "--tz",
        "Asia/Shanghai",
        "--paused",
        "--trigger-args",
        '{"hour": "9", "minute": "0", "day_of_week": "mon-fri"}',
    )
    assert result.exit_code == 0, result.output
    row = task_row(engine, "standup")
    assert (row.trigger, row.spec, row.timezone, row.is_valid, row.status) == (
        "cron",
        "0 9 * * mon-fri",
        "Asia/Shanghai",
        0,
        "paused",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-t", "cron", "-s", "61 * * * *"], "spec: cron field 'minute' value 61 is out of range 0-59"),
        (["-t", "interval", "-s", "-5"], "spec: interval must be positive"),
        (["-t", "interval", "-s", "5", "--tz", "Mars/Olympus"], "timezone: unknown IANA time zone 'Mars/Olympus'"),
        (["--trigger-args", '{"seconds": -1}'], "trigger_args: interval must be positive"),
        (["--trigger-args", "{nope"], "trigger_args: is not valid JSON"),
        (["-t", "interval"], "spec: is required"),
        (["-t", "interval", "-s", "5", "--kwargs", "[1]"], "kwargs: must be a JSON object"),
    ],
)
def test_add_invalid_exits_2_with_the_api_message(tablebeat: Invoke, argv: list[str], message: str) -> None:
    result = tablebeat("task", "add", "bad", "-f", "test_interval", *argv)
    assert result.exit_code == 2
    assert f"error: {message}" in " ".join(result.stderr.split()), result.stderr
    assert result.stdout == ""


def test_add_unknown_job_and_duplicate_exit_2(tablebeat: Invoke) -> None:
    unknown = tablebeat("task", "add", "x", "-f", "os.system", "-t", "interval", "-s", "5")
    assert unknown.exit_code == 2 and "execute_func: 'os.system' is not a registered job" in unknown.stderr
    add(tablebeat, "twice")
    duplicate = tablebeat("task", "add", "twice", "-f", "test_interval", "-t", "interval", "-s", "5")
    assert duplicate.exit_code == 2 and "task_key: a task named 'twice' already exists" in duplicate.stderr


def test_errors_are_red_on_a_colour_terminal(tablebeat: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = tablebeat("task", "show", "ghost")
    assert result.exit_code == 1 and "\x1b[31merror:" in result.stderr


# --- list / show -------------------------------------------------------------------------------------


def test_list_filters_and_pages(tablebeat: Invoke) -> None:
    add(tablebeat, "alpha", "--desc", "daily report")
    assert tablebeat("task", "add", "beta", "-f", "test_cron", "-t", "cron", "-s", "*/5 * * * *").exit_code == 0
    add(tablebeat, "gamma", "--paused")
    table = tablebeat("task", "list")
    assert table.exit_code == 0 and all(k in table.stdout for k in ("alpha", "beta", "gamma", "1-3 of 3"))
    as_json = json.loads(tablebeat("task", "list", "--json", "--trigger", "cron").stdout)
    assert [t["task_key"] for t in as_json["items"]] == ["beta"] and len(as_json["items"][0]["next_fire_times"]) == 5
    assert [
        t["task_key"] for t in json.loads(tablebeat("task", "list", "--json", "--status", "paused").stdout)["items"]
    ] == ["gamma"]
    assert [t["task_key"] for t in json.loads(tablebeat("task", "list", "--json", "-q", "report").stdout)["items"]] == [
        "alpha"
    ]
    page = json.loads(tablebeat("task", "list", "--json", "--limit", "1", "--offset", "1").stdout)
    assert page["total"] == 3 and [t["task_key"] for t in page["items"]] == ["beta"]


def test_list_bad_filter_exits_2(tablebeat: Invoke) -> None:
    result = tablebeat("task", "list", "--status", "sleeping")
    assert result.exit_code == 2 and "status: unknown value 'sleeping'" in result.stderr


def test_show_prints_next_fires_and_last_runs(tablebeat: Invoke, engine: Engine) -> None:
    add(tablebeat, "shown")
    task_id = task_row(engine, "shown").id
    run_id = insert_run(
        engine,
        task_id,
        "failed",
        ago(seconds=30),
        started_at=ago(seconds=30),
        finished_at=ago(seconds=29),
        error="Traceback\nRuntimeError: boom",
        trace_id="abc123trace",
    )
    result = tablebeat("task", "show", "shown")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "next fire times (UTC)" in out and "last runs (1 in all)" in out
    assert str(run_id) in out and "abc123trace" in out and "RuntimeError: boom" in out and "failed" in out
    shown = json.loads(tablebeat("task", "show", str(task_id), "--json").stdout)
    assert len(shown["task"]["next_fire_times"]) == 5 and shown["last_runs"][0]["trace_id"] == "abc123trace"


def test_show_unknown_exits_1(tablebeat: Invoke) -> None:
    result = tablebeat("task", "show", "ghost")
    assert result.exit_code == 1 and "error: no task with id or task_key 'ghost'" in result.stderr


# --- edit / pause / resume / rm -----------------------------------------------------------------------------


def test_edit_changes_only_given_fields(tablebeat: Invoke, engine: Engine) -> None:
    add(tablebeat, "edited", "--desc", "keep", "--args", "7")
    result = tablebeat("task", "edit", "edited", "--spec", "1h30m", "--key", "renamed")
    assert result.exit_code == 0, result.output
    row = task_row(engine, "renamed")
    assert (row.spec, row.desc, row.args) == ("5400", "keep", "7") and task_row(engine, "edited") is None


def test_edit_failures(tablebeat: Invoke) -> None:
    add(tablebeat, "e1")
    bad = tablebeat("task", "edit", "e1", "--trigger", "cron")
    assert bad.exit_code == 2 and "spec: cron expression '5': expected 5 or 6 fields" in bad.stderr
    nothing = tablebeat("task", "edit", "e1")
    assert nothing.exit_code == 2 and "nothing to change" in nothing.stderr
    missing = tablebeat("task", "edit", "ghost", "--spec", "5")
    assert missing.exit_code == 1 and "no task" in missing.stderr


def test_pause_and_resume(tablebeat: Invoke, engine: Engine) -> None:
    add(tablebeat, "switch")
    paused = tablebeat("task", "pause", "switch")
    assert paused.exit_code == 0 and "paused" in paused.stdout
    assert (task_row(engine, "switch").is_valid, task_row(engine, "switch").status) == (0, "paused")
    resumed = tablebeat("task", "resume", "switch")
    assert resumed.exit_code == 0 and "next fire times" in resumed.stdout
    assert (task_row(engine, "switch").is_valid, task_row(engine, "switch").status) == (1, "ready")
    for verb in ("pause", "resume"):
        assert tablebeat("task", verb, "ghost").exit_code == 1


def test_rm(tablebeat: Invoke, engine: Engine) -> None:
    add(tablebeat, "gone")
    declined = tablebeat("task", "rm", "gone", input="n\n")
    assert declined.exit_code == 1 and task_row(engine, "gone") is not None
    confirmed = tablebeat("task", "rm", "gone", input="y\n")
    assert confirmed.exit_code == 0 and task_row(engine, "gone") is None
    add(tablebeat, "gone2")
    assert tablebeat("task", "rm", "gone2", "--yes").exit_code == 0 and task_row(engine, "gone2") is None
    missing = tablebeat("task", "rm", "ghost", "-y")
    assert missing.exit_code == 1 and "no task" in missing.stderr


# --- run / logs -----------------------------------------------------------------------------------


def test_run_dispatches_and_prints_run_and_trace(tablebeat: Invoke, engine: Engine, broker_url: str) -> None:
    add(tablebeat, "runner")
    result = tablebeat("task", "run", "runner")
    assert result.exit_code == 0, result.output
    words = result.stdout.split()
    run_id = int(words[words.index("run") + 1])
    trace_id = result.stdout.split("trace_id=")[1].split()[0]
    with engine.connect() as conn:
        run = conn.execute(select(ExecuteTask).where(ExecuteTask.id == run_id)).one()
    assert run.trace_id == trace_id and run.status == "pending" and run.published_at is not None
    queued = [json.loads(m)["headers"]["trace_id"] for m in redis.Redis.from_url(broker_url).lrange("celery", 0, -1)]
    assert trace_id in queued
    assert tablebeat("task", "run", "ghost").exit_code == 1


def test_logs_newest_first_filtered(tablebeat: Invoke, engine: Engine) -> None:
    add(tablebeat, "logged")
    task_id = task_row(engine, "logged").id
    for minutes, status in ((3, "success"), (2, "failed"), (1, "success")):
        at = ago(minutes=minutes)
        insert_run(
            engine,
            task_id,
            status,
            at,
            started_at=at,
            finished_at=at + timedelta(seconds=2),
            trace_id=f"trace-{minutes}",
            result="'ok'" if status == "success" else None,
            error="RuntimeError: boom" if status == "failed" else None,
        )
    table = tablebeat("task", "logs", "logged")
    assert table.exit_code == 0 and table.stdout.index("trace-1") < table.stdout.index("trace-2") < table.stdout.index(
        "trace-3"
    )
    assert "2.000" in table.stdout and "runs 1-3 of 3" in table.stdout
    failed = json.loads(tablebeat("task", "logs", "logged", "--status", "failed", "--json").stdout)
    assert [r["trace_id"] for r in failed["items"]] == ["trace-2"] and failed["items"][0]["duration_seconds"] == 2.0
    bad = tablebeat("task", "logs", "logged", "--status", "exploded")
    assert bad.exit_code == 2 and "status: unknown value 'exploded'" in bad.stderr
    assert tablebeat("task", "logs", "ghost").exit_code == 1


# --- prune -----------------------------------------------------------------------------------------------


def test_prune_deletes_old_finished_runs_in_batches(tablebeat: Invoke, engine: Engine) -> None:
    add(tablebeat, "busy")
    task_id = task_row(engine, "busy").id
    for index in range(7):
        insert_run(engine, task_id, "success", ago(days=40, seconds=index))
    insert_run(engine, task_id, "running", ago(days=40, seconds=99))  # still in progress: kept
    insert_run(engine, task_id, "failed", ago(days=3))  # recent: kept
    result = tablebeat("prune", "--older-than", "30d", "--batch-size", "3")
    assert result.exit_code == 0 and "deleted 7 finished run(s) older than 30d" in result.stdout, result.output
    with engine.connect() as conn:
        left = sorted(conn.execute(select(ExecuteTask.status)).scalars())
    assert left == ["failed", "running"]
    assert "deleted 1 " in tablebeat("prune", "--older-than", "2d").stdout


@pytest.mark.parametrize("age", ["30", "30x", "d", "0d", ""])
def test_prune_bad_duration_exits_2(tablebeat: Invoke, age: str) -> None:
    result = tablebeat("prune", "--older-than", age)
    assert result.exit_code == 2 and "older-than:" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("1d12h", 129600), ("2w", 1209600), ("45s", 45)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    from cli.prune import parse_duration

    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("argv", "body"),
    [
        (["-t", "cron", "-s", "0 25 * * *"], {"trigger": "cron", "spec": "0 25 * * *"}),
        (
            ["-t", "interval", "-s", "5", "--tz", "No/Cty"],
            {"trigger": "interval", "spec": "5", "timezone": "No/Cty"},
        ),
        (["--trigger-args", '{"minutes": -3}'], {"trigger_args": {"minutes": -3}}),
        (["-t", "interval", "-s", "5", "--args", "1,,2"], {"trigger": "interval", "spec": "5", "args": "1,,2"}),
    ],
)
def test_cli_and_api_give_the_same_message(
    tablebeat: Invoke, db_url: str, broker_url: str, argv: list[str], body: dict
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import ApiSettings
    from conf.settings import Settings
    from service.tasks import TaskService

    settings = ApiSettings(Settings(database_url=db_url, broker_url=broker_url))
    service = TaskService(settings.service)
    try:
        api_error = TestClient(create_app(settings, service=service)).post(
            "/tasks", json={"task_key": "same", "execute_func": "test_interval", **body}
        )
    finally:
        service.close()
    cli_error = tablebeat("task", "add", "same", "-f", "test_interval", *argv)
    assert api_error.status_code == 422 and cli_error.exit_code == 2
    assert " ".join(cli_error.stderr.split()) == f"error: {api_error.json()['detail']}"
