"""Every ``/tasks`` endpoint, success and failure, against MariaDB and a Redis broker."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.app import create_app
from api.settings import ApiSettings
from conf.settings import Settings
from models import ExecuteTask
from service.tasks import TaskService
from tests.api.ops_env import UTC, ago, insert_run

pytestmark = pytest.mark.mariadb


def body(key: str = "report", **fields: object) -> dict[str, object]:
    """A valid create body, with ``fields`` replacing or adding to it."""
    return {"task_key": key, "execute_func": "test_interval", "trigger": "interval", "spec": "5", **fields}


def create(client: TestClient, key: str = "report", **fields: object) -> dict:
    response = client.post("/tasks", json=body(key, **fields))
    assert response.status_code == 201, response.text
    return response.json()


def fires(task: dict) -> list[datetime]:
    return [datetime.fromisoformat(t) for t in task["next_fire_times"]]


# --- create -------------------------------------------------------------------------------


def test_create_with_trigger_and_spec_shows_next_five_fires(client: TestClient) -> None:
    task = create(client, "report", spec="90s", args="1,2,3", kwargs={"channel": "#ops"}, desc="nightly")
    assert task["spec"] == "90" and task["status"] == "ready" and task["is_valid"] is True
    assert task["args"] == "1,2,3" and task["kwargs"] == {"channel": "#ops"} and task["desc"] == "nightly"
    times = fires(task)
    assert len(times) == 5 and all((b - a) == timedelta(seconds=90) for a, b in zip(times, times[1:], strict=False))
    assert times[0] > datetime.now(UTC)


@pytest.mark.parametrize(
    ("trigger_args", "trigger", "spec"),
    [
        ({"hour": "9", "minute": "0", "day_of_week": "mon-fri"}, "cron", "0 9 * * mon-fri"),
        ({"hour": 9}, "cron", "0 9 * * *"),
        ({"minute": "*/5"}, "cron", "*/5 * * * *"),
        ({"day_of_week": "5-6", "hour": "8"}, "cron", "0 8 * * sun,sat"),
        ({"hours": 1}, "interval", "3600"),
        ({"seconds": 60}, "interval", "60"),
        ({"weeks": 1, "days": 1, "minutes": 1}, "interval", str(8 * 86400 + 60)),
        ({"run_date": "2031-12-31"}, "date", "2031-12-31 00:00:00"),
        ({"run_date": "2031-12-31T23:59:59"}, "date", "2031-12-31 23:59:59"),
    ],
)
def test_create_with_trigger_args_stores_normalised_spec(
    client: TestClient, trigger_args: dict, trigger: str, spec: str
) -> None:
    task = create(client, "aps", trigger=None, spec=None, trigger_args=trigger_args)
    assert (task["trigger"], task["spec"]) == (trigger, spec)
    assert len(fires(task)) == (1 if trigger == "date" else 5)


def test_create_trigger_args_timezone_applies(client: TestClient) -> None:
    task = create(
        client, "sh", trigger=None, spec=None, trigger_args={"hour": "9", "minute": "0", "timezone": "Asia/Shanghai"}
    )
    assert task["timezone"] == "Asia/Shanghai"
    assert all(t.astimezone(UTC).hour == 1 for t in fires(task))  # 09:00 in Shanghai is 01:00 UTC


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"trigger": "cron", "spec": "61 * * * *"}, "spec", "cron field 'minute' value 61 is out of range 0-59"),
        ({"trigger": "cron", "spec": "* * *"}, "spec", "expected 5 or 6 fields"),
        ({"execute_func": "os.system"}, "execute_func", "is not a registered job"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown IANA time zone"),
        ({"spec": "-5"}, "spec", "interval must be positive"),
        ({"trigger": None, "spec": None, "trigger_args": {"seconds": -5}}, "trigger_args", "interval must be positive"),
        ({"trigger": None, "spec": None, "trigger_args": {"hour": "25"}}, "trigger_args", "out of range"),
        (
            {"trigger": None, "spec": None, "trigger_args": {"year": "20x0"}},
            "trigger_args.year",
            "not a year expression",
        ),
        ({"trigger": None, "spec": None, "trigger_args": {"hours": 1, "minute": 5}}, "trigger_args", "mixes keys"),
        ({"trigger_args": {"hours": 1}}, "trigger_args", "either trigger_args or spec"),
        ({"trigger": "weekly"}, "trigger", "unknown trigger"),
        ({"trigger": None}, "trigger", "is required"),
        ({"trigger": "date", "spec": "2031-02-30 10:00:00"}, "spec", "not a valid date"),
        ({"args": "__import__('os')"}, "args", "bare word"),
        ({"args": {"a": 1}}, "args", "valid string"),
        ({"kwargs": {"sub_task_id": 1}}, "kwargs", "reserved"),
        ({"kwargs": "[1]"}, "kwargs", "JSON object"),
        ({"max_instances": -1}, "max_instances", "at least 0"),
        ({"max_instances": "many"}, "max_instances", "valid integer"),
        ({"expires_seconds": 0}, "expires_seconds", "at least 1"),
        # beyond the INTEGER column: a 422, never the database's out-of-range error as a 500
        ({"max_instances": 99999999999}, "max_instances", "at most 2147483647"),
        ({"expires_seconds": 2**31}, "expires_seconds", "at most 2147483647"),
        ({"misfire_grace_seconds": 10**20}, "misfire_grace_seconds", "at most 2147483647"),
        (
            {"trigger": None, "spec": None, "trigger_args": {"hour": "1", "start_date": "0001-01-01"}},
            "trigger_args.start_date",
            "between 1970-01-01 and 9998-12-31",
        ),
        (
            {"trigger": None, "spec": None, "trigger_args": {"seconds": 5, "jitter": 99999999999}},
            "trigger_args.jitter",
            "at most 2147483647",
        ),
        ({"task_key": ""}, "task_key", "is required"),
        ({"task_key": "k" * 300}, "task_key", "limit is 255"),
        ({"colour": "red"}, "colour", "is not a task field"),
    ],
)
def test_create_invalid_body_names_field_and_reason(client: TestClient, fields: dict, field: str, reason: str) -> None:
    response = client.post("/tasks", json=body("bad", **fields))
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["field"] == field
    assert error["detail"].startswith(f"{field}: ") and reason in error["detail"], error["detail"]
    assert client.get("/tasks").json()["total"] == 0


def test_create_missing_required_field(client: TestClient) -> None:
    response = client.post("/tasks", json={"execute_func": "test_interval", "trigger": "interval", "spec": "5"})
    assert response.status_code == 422 and response.json()["detail"] == "task_key: Field required"


def test_create_malformed_json(client: TestClient) -> None:
    response = client.post("/tasks", content=b'{"task_key": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"].startswith(
        "body: is not valid JSON at character 13"
    )


def test_create_duplicate_task_key_is_409(client: TestClient) -> None:
    create(client, "dup")
    response = client.post("/tasks", json=body("dup"))
    assert response.status_code == 409
    assert response.json() == {"detail": "task_key: a task named 'dup' already exists", "field": "task_key"}


# --- list / get ----------------------------------------------------------------------------------


def test_list_filters_by_status_trigger_text_and_pages(client: TestClient) -> None:
    create(client, "alpha-report", desc="daily numbers")
    create(client, "beta", trigger="cron", spec="*/5 * * * *", desc="the report of beta")
    create(client, "gamma", is_valid=False)
    for key in ("d1", "d2", "d3"):
        create(client, key)
    everything = client.get("/tasks").json()
    assert everything["total"] == 6 and [t["task_key"] for t in everything["items"]][:3] == [
        "alpha-report",
        "beta",
        "gamma",
    ]
    assert all(len(t["next_fire_times"]) == 5 for t in everything["items"] if t["is_valid"])
    assert [t["task_key"] for t in client.get("/tasks?status=paused").json()["items"]] == ["gamma"]
    assert [t["task_key"] for t in client.get("/tasks?trigger=cron").json()["items"]] == ["beta"]
    assert [t["task_key"] for t in client.get("/tasks?q=report").json()["items"]] == ["alpha-report", "beta"]
    assert client.get("/tasks?q=50%25").json()["total"] == 0  # LIKE wildcards are literal
    page = client.get("/tasks?limit=2&offset=2").json()
    assert (page["total"], page["limit"], page["offset"]) == (6, 2, 2)
    assert [t["task_key"] for t in page["items"]] == ["gamma", "d1"]


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("status=sleeping", "status: unknown value 'sleeping'"),
        ("trigger=weekly", "trigger: unknown value 'weekly'"),
        ("limit=0", "limit: must be between 1 and 1000"),
        ("offset=-1", "offset: must not be negative"),
        ("limit=ten", "limit: Input should be a valid integer"),
    ],
)
def test_list_bad_query_is_422(client: TestClient, query: str, detail: str) -> None:
    response = client.get(f"/tasks?{query}")
    assert response.status_code == 422 and response.json()["detail"].startswith(detail), response.text


def test_get_by_id_and_by_task_key(client: TestClient) -> None:
    task = create(client, "lookup")
    assert client.get(f"/tasks/{task['id']}").json()["task_key"] == "lookup"
    assert client.get("/tasks/lookup").json()["id"] == task["id"]


def test_get_unknown_task_is_404(client: TestClient) -> None:
    response = client.get("/tasks/nope")
    assert response.status_code == 404 and response.json()["detail"] == "no task with id or task_key 'nope'"


def test_get_shows_schedule_error_of_a_row_broken_by_sql(client: TestClient, engine: Engine) -> None:
    task = create(client, "broken")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE task SET spec = '61 * * * *', `trigger` = 'cron' WHERE id = %s", (task["id"],))
    shown = client.get("/tasks/broken").json()
    assert shown["schedule_error"].startswith("spec: cron field 'minute'") and shown["next_fire_times"] == []


# --- put / patch ----------------------------------------------------------------------------------


def test_put_replaces_every_field(client: TestClient) -> None:
    task = create(client, "swap", desc="old", args="1", queue="q1", max_instances=3)
    response = client.put(
        f"/tasks/{task['id']}",
        json={
            "task_key": "swapped",
            "execute_func": "test_cron",
            "trigger_args": {"minute": "*/10"},
        },
    )
    assert response.status_code == 200, response.text
    new = response.json()
    assert (new["id"], new["task_key"], new["execute_func"], new["trigger"], new["spec"]) == (
        task["id"],
        "swapped",
        "test_cron",
        "cron",
        "*/10 * * * *",
    )
    assert (new["desc"], new["args"], new["queue"], new["max_instances"]) == ("", "", None, 1)


def test_put_failures(client: TestClient) -> None:
    create(client, "one")
    create(client, "two")
    assert client.put("/tasks/missing", json=body("missing")).status_code == 404
    renamed = client.put("/tasks/two", json=body("one"))
    assert renamed.status_code == 409 and renamed.json()["field"] == "task_key"
    no_schedule = client.put("/tasks/two", json={"task_key": "two", "execute_func": "test_interval"})
    assert no_schedule.status_code == 422 and no_schedule.json()["field"] == "trigger"


def test_patch_changes_only_given_fields(client: TestClient) -> None:
    task = create(client, "patchy", desc="keep me", args='"a","b"', spec="5")
    response = client.patch("/tasks/patchy", json={"spec": "1h30m"})
    assert response.status_code == 200, response.text
    new = response.json()
    assert new["spec"] == "5400" and new["desc"] == "keep me" and new["args"] == '"a","b"'
    assert datetime.fromisoformat(new["update_at"]) >= datetime.fromisoformat(task["update_at"])
    to_cron = client.patch(
        "/tasks/patchy", json={"trigger_args": {"hour": "9", "minute": "0", "day_of_week": "mon-fri"}}
    )
    assert (to_cron.json()["trigger"], to_cron.json()["spec"]) == ("cron", "0 9 * * mon-fri")


def test_patch_failures(client: TestClient) -> None:
    create(client, "p1")
    create(client, "p2")
    assert client.patch("/tasks/ghost", json={"spec": "5"}).status_code == 404
    bad = client.patch("/tasks/p1", json={"spec": "soon"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("spec: cannot read interval 'soon'")
    assert client.patch("/tasks/p1", json={"trigger": "cron"}).json()["field"] == "spec"  # '5' is no cron
    assert client.patch("/tasks/p1", json={"task_key": "p2"}).status_code == 409
    assert client.patch("/tasks/p1", json={"execute_func": None}).json()["detail"] == "execute_func: must not be empty"
    assert client.get("/tasks/p1").json()["spec"] == "5"


# --- delete / pause / resume ----------------------------------------------------------------------


def test_delete_then_gone(client: TestClient) -> None:
    task = create(client, "doomed")
    assert client.delete(f"/tasks/{task['id']}").status_code == 204
    assert client.get("/tasks/doomed").status_code == 404
    assert client.delete("/tasks/doomed").status_code == 404


def test_pause_and_resume(client: TestClient) -> None:
    create(client, "sleepy")
    paused = client.post("/tasks/sleepy/pause")
    assert paused.status_code == 200
    assert (paused.json()["is_valid"], paused.json()["status"], paused.json()["next_fire_times"]) == (
        False,
        "paused",
        [],
    )
    resumed = client.post("/tasks/sleepy/resume").json()
    assert (resumed["is_valid"], resumed["status"], len(resumed["next_fire_times"])) == (True, "ready", 5)


@pytest.mark.parametrize("verb", ["pause", "resume", "run"])
def test_verbs_on_unknown_task_are_404(client: TestClient, verb: str) -> None:
    assert client.post(f"/tasks/ghost/{verb}").status_code == 404


# --- run now ----------------------------------------------------------------------------------------


def test_run_now_records_and_publishes(client: TestClient, engine: Engine, broker_url: str) -> None:
    task = create(client, "now", args="1,2", kwargs={"k": "v"})
    before = datetime.now(UTC)
    response = client.post("/tasks/now/run")
    assert response.status_code == 202, response.text
    started = response.json()
    with engine.connect() as conn:
        run = conn.execute(select(ExecuteTask).where(ExecuteTask.id == started["run_id"])).one()
    assert run.task_id == task["id"] and run.status == "pending" and run.trace_id == started["trace_id"]
    assert run.published_at is not None and before <= run.scheduled_at <= datetime.now(UTC)
    assert run.scheduled_at.microsecond != 0 or run.scheduled_at == datetime.fromisoformat(started["scheduled_at"])
    messages = [json.loads(m) for m in redis.Redis.from_url(broker_url).lrange("celery", 0, -1)]
    sent = [m for m in messages if m["headers"]["id"] == started["celery_id"]]
    assert sent and sent[0]["headers"]["task"] == "test_interval"
    assert sent[0]["headers"]["trace_id"] == started["trace_id"]


def test_run_now_of_a_row_that_cannot_run_is_422(client: TestClient, engine: Engine) -> None:
    task = create(client, "norun")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE task SET execute_func = 'os.system' WHERE id = %s", (task["id"],))
    response = client.post("/tasks/norun/run")
    assert response.status_code == 422 and response.json()["field"] == "execute_func"


# --- logs ----------------------------------------------------------------------------------------------


def test_logs_newest_first_with_durations_filtered_and_paged(client: TestClient, engine: Engine) -> None:
    task = create(client, "logged")
    base = ago(minutes=10)
    for minute, status in enumerate(["success", "failed", "success", "running"]):
        at = base + timedelta(minutes=minute)
        finished = None if status == "running" else at + timedelta(seconds=1.5)
        insert_run(
            engine,
            task["id"],
            status,
            at,
            started_at=at,
            finished_at=finished,
            result="'ok'" if status == "success" else None,
            error="Traceback...\nRuntimeError: boom" if status == "failed" else None,
        )
    page = client.get(f"/tasks/{task['id']}/logs").json()
    assert page["total"] == 4 and [r["status"] for r in page["items"]] == ["running", "success", "failed", "success"]
    newest_done = page["items"][1]
    assert newest_done["duration_seconds"] == 1.5 and newest_done["result"] == "'ok'" and newest_done["trace_id"]
    assert page["items"][0]["duration_seconds"] is None
    failed = client.get("/tasks/logged/logs?status=failed").json()
    assert failed["total"] == 1 and failed["items"][0]["error"].endswith("RuntimeError: boom")
    second = client.get("/tasks/logged/logs?limit=1&offset=1").json()
    assert second["total"] == 4 and [r["status"] for r in second["items"]] == ["success"]


def test_logs_failures(client: TestClient) -> None:
    create(client, "quiet")
    assert client.get("/tasks/ghost/logs").status_code == 404
    bad = client.get("/tasks/quiet/logs?status=exploded")
    assert bad.status_code == 422 and bad.json()["detail"].startswith("status: unknown value 'exploded'")
    assert client.get("/tasks/quiet/logs?limit=5000").json()["field"] == "limit"
    assert client.get("/tasks/quiet/logs").json() == {"items": [], "total": 0, "limit": 20, "offset": 0}


def test_run_now_with_broker_down_is_503_and_keeps_the_run_for_beat(
    client: TestClient, engine: Engine, db_url: str
) -> None:
    create(client, "outbox")
    settings = ApiSettings(Settings(database_url=db_url, broker_url="redis://127.0.0.1:1/0"), api_token=None)
    service = TaskService(settings.service)
    try:
        response = TestClient(create_app(settings, service=service)).post("/tasks/outbox/run", json={})
    finally:
        service.close()
    assert response.status_code == 503
    assert "broker unreachable" in response.json()["detail"] and "beat will publish it" in response.json()["detail"]
    with engine.connect() as conn:
        run = conn.execute(select(ExecuteTask)).one()
    assert run.status == "pending" and run.published_at is None  # beat's outbox sweep republishes it
