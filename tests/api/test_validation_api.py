"""The API refuses, with 422 naming the field: reserved kwargs, a date already past beyond its grace,
paging values beyond what the database takes (issue 9 items 2, 4 and 6).  MariaDB + Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from models import Task

pytestmark = pytest.mark.mariadb

HUGE = ["99999999999999999999", "18446744073709551616", "9223372036854775808"]


def body(key: str = "report", **fields: object) -> dict[str, object]:
    return {"task_key": key, "execute_func": "test_interval", "trigger": "interval", "spec": "5", **fields}


def _wall(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("name", ["self", "task_key", "sub_task_id", "__unique_trace_id__"])
@pytest.mark.parametrize("as_text", [False, True], ids=["object", "text"])
def test_reserved_kwargs_are_422_naming_kwargs(client: TestClient, name: str, as_text: bool) -> None:
    kwargs: object = {name: 1, "channel": "#ops"}
    response = client.post("/tasks", json=body(kwargs=f'{{"{name}": 1}}' if as_text else kwargs))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "kwargs" and repr(name) in response.json()["detail"]
    assert client.get("/tasks").json()["total"] == 0


def test_patch_to_reserved_kwargs_is_422(client: TestClient) -> None:
    assert client.post("/tasks", json=body()).status_code == 201
    response = client.patch("/tasks/report", json={"kwargs": {"self": 1}})
    assert response.status_code == 422 and response.json()["field"] == "kwargs", response.text


@pytest.mark.parametrize("extra", ["{not json", "[1]", '"text"'])
def test_invalid_extra_is_422_naming_extra(client: TestClient, extra: str) -> None:
    response = client.post("/tasks", json=body(extra=extra))
    assert response.status_code == 422 and response.json()["field"] == "extra", response.text


def test_date_already_past_beyond_the_grace_is_422_naming_spec(client: TestClient) -> None:
    response = client.post("/tasks", json=body(trigger="date", spec="2020-01-01 00:00:00", timezone="UTC"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "spec" and "misfire_grace_seconds" in response.json()["detail"]
    old = _wall(datetime.now(UTC) - timedelta(minutes=10))
    graced = client.post(
        "/tasks", json=body("graced", trigger="date", spec=old, timezone="UTC", misfire_grace_seconds=3600)
    )
    assert graced.status_code == 201, graced.text  # within its own grace: accepted, runs late
    args = client.post("/tasks", json=body("aps", trigger=None, spec=None, trigger_args={"run_date": "2020-01-01"}))
    assert args.status_code == 422 and args.json()["field"] == "trigger_args", args.text


def test_date_a_few_seconds_past_is_accepted_and_runs_late(client: TestClient) -> None:
    recent = _wall(datetime.now(UTC) - timedelta(seconds=5))
    response = client.post("/tasks", json=body("now", trigger="date", spec=recent, timezone="UTC"))
    assert response.status_code == 201, response.text


def test_editing_a_past_date_job_without_touching_its_date_is_allowed(client: TestClient, engine: Engine) -> None:
    """A date job that ran (or was missed) long ago stays editable: only a new past date is refused."""
    created = client.post("/tasks", json=body("once", trigger="date", spec="2099-01-01 00:00:00", timezone="UTC"))
    assert created.status_code == 201, created.text
    with engine.begin() as conn:  # as if it had fired in 2020
        conn.execute(update(Task).where(Task.task_key == "once").values(spec="2020-01-01 00:00:00"))
    response = client.patch("/tasks/once", json={"desc": "ran already"})
    assert response.status_code == 200, response.text
    replaced = client.put("/tasks/once", json=body("once", trigger="date", spec="2020-01-01 00:00:00", timezone="UTC"))
    assert replaced.status_code == 200, replaced.text
    moved = client.patch("/tasks/once", json={"spec": "2020-01-02 00:00:00"})
    assert moved.status_code == 422 and moved.json()["field"] == "spec", moved.text


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("parameter", ["offset", "limit"])
def test_huge_paging_of_tasks_is_422_naming_the_parameter(client: TestClient, parameter: str, value: str) -> None:
    response = client.get(f"/tasks?{parameter}={value}")
    assert response.status_code == 422, response.text
    assert response.json()["field"] == parameter


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("parameter", ["offset", "limit"])
def test_huge_paging_of_logs_is_422_naming_the_parameter(client: TestClient, parameter: str, value: str) -> None:
    assert client.post("/tasks", json=body("x")).status_code == 201
    response = client.get(f"/tasks/x/logs?{parameter}={value}")
    assert response.status_code == 422, response.text
    assert response.json()["field"] == parameter


def test_largest_offset_the_database_takes_is_an_empty_page(client: TestClient) -> None:
    assert client.post("/tasks", json=body("x")).status_code == 201
    response = client.get(f"/tasks?offset={2**63 - 1}")
    assert response.status_code == 200 and response.json()["items"] == [], response.text
    logs = client.get(f"/tasks/x/logs?offset={2**63 - 1}")
    assert logs.status_code == 200 and logs.json()["items"] == [], logs.text


@pytest.mark.parametrize("path", ["/task-manage/?skip={}", "/task-manage/{task_id}/logs?skip={}"])
def test_huge_skip_of_the_003_api_is_422_naming_skip(client: TestClient, path: str) -> None:
    task_id = client.post("/tasks", json=body("x")).json()["id"]
    response = client.get(path.format(HUGE[0], task_id=task_id))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "skip"
