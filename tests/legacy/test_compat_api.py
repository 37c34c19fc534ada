"""003's and 004's APIs at their paths: each document's own example bodies, posted verbatim to a real
``tablebeat api`` process, fire on a real beat + worker (MariaDB + Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from tests.helpers import sql
from tests.legacy.conftest import legacy_env
from tests.legacy.documents import document, json_examples
from tests.processes import Cluster, api_server, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]
TOKEN = "compat-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api(
    mariadb_url: str, broker_url: str, legacy_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """``tablebeat api`` loading the legacy job modules, next to the legacy beat + worker."""
    env = legacy_env(mariadb_url, broker_url, TABLEBEAT_API_TOKEN=TOKEN)
    log_path = tmp_path_factory.mktemp("compat-api") / "api.log"
    try:
        with (
            api_server(env, log_path, argv=("-m", "cli.main", "api")) as base,
            httpx.Client(base_url=base, headers=AUTH, timeout=10) as client,
        ):
            yield client
    finally:
        print(log_path.read_text(errors="replace")[-3000:])


def _finished_logs(api: httpx.Client, task_id: str) -> list[dict]:
    """Logs of finished runs; a date already past may also have left beat's ``skipped`` row."""
    logs = api.get(f"/task-manage/{task_id}/logs").json()
    return [log for log in logs if log["status"] != "running" and not (log["result"] or "").startswith("skipped")]


def test_003_example_bodies_create_trigger_and_log(api: httpx.Client, db: Engine) -> None:
    examples = json_examples("003")
    assert len(examples) == 4
    created = []
    for body in examples:
        response = api.post("/task-manage/", json=body)
        assert response.status_code == 200, response.text
        task = response.json()
        assert task["name"] == body["name"] and task["func_path"] == body["func_path"]
        assert task["trigger_type"] == body["trigger_type"] and task["trigger_args"] == body["trigger_args"]
        assert task["func_args"] == body["func_args"] and task["description"] == body["description"]
        assert task["status"] in ("pending", "completed")
        assert len(task["id"]) == 36  # 003's string ids
        created.append(task)
    # Stored next to the compiled schedule, and returned as given by tablebeat's own API too.
    own = api.get(f"/tasks/{created[3]['id']}").json()
    assert own["trigger"] == "cron" and own["spec"] == "30 23 * * mon-fri"
    assert own["trigger_args"] == examples[3]["trigger_args"]

    for task in created:
        started = api.post(f"/task-manage/{task['id']}/trigger")
        assert started.status_code == 200, started.text
        assert len(started.json()["trace_id"]) == 32
    expected = {
        created[0]["id"]: "'notified user123 via email: This is a scheduled notification'",
        created[1]["id"]: "'simple: Happy New Year!'",
        created[2]["id"]: "'processed data123 (hourly_update)'",
        created[3]["id"]: "'simple: Daily backup started'",
    }
    for task_id, result in expected.items():
        (log,) = wait_for(
            lambda t=task_id: [g for g in _finished_logs(api, t) if g["status"] == "completed"],
            30,
            what=f"the triggered run of {task_id}",
        )
        assert log["status"] == "completed" and log["result"] == result and log["task_id"] == task_id, log
        assert api.get(f"/task-manage/{task_id}").json()["status"] in ("pending", "completed")

    # pause / resume / update with 003's names, errors named in 003's terms.
    first = created[0]["id"]
    assert api.post(f"/task-manage/{first}/pause").json()["status"] == "paused"
    assert api.post(f"/task-manage/{first}/resume").json()["status"] == "pending"
    updated = api.put(f"/task-manage/{first}", json={"trigger_args": {"hour": "10", "minute": "15"}}).json()
    assert updated["trigger_args"] == {"hour": "10", "minute": "15"} and updated["name"] == examples[0]["name"]
    assert api.get(f"/tasks/{first}").json()["spec"] == "15 10 * * *"
    bad = api.put(f"/task-manage/{first}", json={"func_path": "os.system"})
    assert bad.status_code == 422 and bad.json()["field"] == "func_path", bad.text
    listed = api.get("/task-manage/").json()
    assert {t["id"] for t in listed} >= set(expected)

    # Delete cascades to the logs, as 003's foreign key did.
    numeric = api.get(f"/tasks/{first}").json()["id"]
    assert sql(db, "SELECT COUNT(*) FROM execute_task WHERE task_id = :t", t=numeric)[0][0] >= 1
    assert api.delete(f"/task-manage/{first}").status_code == 200
    assert api.get(f"/task-manage/{first}").status_code == 404
    assert sql(db, "SELECT COUNT(*) FROM execute_task WHERE task_id = :t", t=numeric)[0][0] == 0


def test_003_running_status_while_a_run_is_running(api: httpx.Client) -> None:
    body = {
        "name": "slow",
        "task_type": "t",
        "trigger_type": "interval",
        "trigger_args": {"hours": 1},
        "func_path": "workers.examples:sleep_for",
        "func_args": {"seconds": 3},
    }
    task = api.post("/task-manage/", json=body).json()
    api.post(f"/task-manage/{task['id']}/trigger")
    wait_for(lambda: api.get(f"/task-manage/{task['id']}").json()["status"] == "running", 20, what="status running")
    wait_for(lambda: _finished_logs(api, task["id"]), 20, what="the slow run to finish")
    assert api.get(f"/task-manage/{task['id']}").json()["status"] == "pending"


def test_004_example_body_adds_runs_and_stamps_last_run(api: httpx.Client) -> None:
    (body,) = json_examples("004")
    response = api.post("/api/scheduler/task/add", json=body)
    assert response.status_code == 200, response.text
    task = response.json()
    assert (task["name"], task["func"], task["trigger"], task["trigger_args"], task["status"]) == (
        body["name"],
        body["func"],
        body["trigger"],
        body["trigger_args"],
        1,
    )
    assert task["next_run"] is not None and task["last_run"] is None
    run = api.post(f"/api/scheduler/task/run/{task['id']}")
    assert run.status_code == 200, run.text
    logs = wait_for(
        lambda: [r for r in api.get(f"/tasks/{task['id']}/logs").json()["items"] if r["status"] == "success"],
        30,
        what="the zero-argument job's run",
    )
    assert logs[0]["result"] == "'synced'"
    assert api.get("/api/scheduler/task/list").json()[-1]["last_run"] is not None or any(
        t["last_run"] for t in api.get("/api/scheduler/task/list").json() if t["id"] == task["id"]
    )
    assert api.post(f"/api/scheduler/task/pause/{task['id']}").json()["status"] == 0
    assert api.post(f"/api/scheduler/task/resume/{task['id']}").json()["status"] == 1
    missing = api.post("/api/scheduler/task/add", json={**body, "func": "scheduler.module.sync_tasks:nope"})
    assert missing.status_code == 422 and missing.json()["field"] == "func"
    assert api.post("/api/scheduler/task/run/999999").status_code == 404


def test_compat_routers_need_the_token_and_are_documented(api: httpx.Client) -> None:
    anonymous = httpx.Client(base_url=str(api.base_url), timeout=10)
    try:
        assert anonymous.get("/task-manage/").status_code == 401
        assert anonymous.get("/api/scheduler/task/list").status_code == 401
    finally:
        anonymous.close()
    spec = api.get("/openapi.json").json()
    tags = {tag for path in spec["paths"].values() for op in path.values() for tag in op.get("tags", [])}
    assert {"task-manage (003)", "scheduler (004)", "tasks"} <= tags
    for path in ("/task-manage/{task_id}/trigger", "/task-manage/{task_id}/logs", "/api/scheduler/task/run/{id}"):
        assert path in spec["paths"], path
    # Every path the documents list is served.
    for path in ("/task-manage/", "/api/scheduler/task/list", "/api/scheduler/task/add"):
        assert path in document("003") + document("004")


def test_004_edits_reach_beat_within_a_second_or_so(api: httpx.Client, db: Engine) -> None:
    """Same pickup as /tasks: an interval task added through 004 fires at once, a pause stops it."""
    body = {
        "name": "every second",
        "func": "scheduler.module.sync_tasks:daily_report",
        "trigger": "interval",
        "trigger_args": {"seconds": 1},
    }
    task = api.post("/api/scheduler/task/add", json=body).json()

    def successes() -> int:
        return sql(db, "SELECT COUNT(*) FROM execute_task WHERE task_id = :t AND status = 'success'", t=task["id"])[0][
            0
        ]

    wait_for(lambda: successes() >= 2, 15, what="two fires of the added task")
    api.post(f"/api/scheduler/task/pause/{task['id']}")
    paused_at = sql(db, "SELECT UTC_TIMESTAMP(6)")[0][0]
    wait_for(lambda: sql(db, "SELECT status FROM task WHERE id = :t", t=task["id"])[0][0] == "paused", 5, what="paused")
    wait_for(
        lambda: sql(db, "SELECT UTC_TIMESTAMP(6) > :p + INTERVAL 3 SECOND", p=paused_at)[0][0],
        10,
        what="three seconds after the pause",
    )
    # Within a second of the pause no run starts any more (a fire claimed ahead may be recorded skipped).
    started_late = sql(
        db,
        "SELECT COUNT(*) FROM execute_task WHERE task_id = :t AND started_at > :p + INTERVAL 1 SECOND",
        t=task["id"],
        p=paused_at,
    )[0][0]
    assert started_late == 0, f"{started_late} runs started more than 1 s after the pause"
