"""A console route that refuses its input answers with an HTML page naming the field, not JSON."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import Engine, update

from models import Task
from service.tasks import TaskService
from tests.api.ops_env import ago, insert_run

pytestmark = pytest.mark.mariadb

HUGE = "99999999999999999999"


def _task(service: TaskService) -> int:
    spec = {"task_key": "r", "execute_func": "test_interval", "trigger": "interval", "spec": "5"}
    return service.create_task(spec).id


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/?page={HUGE}", "page"),
        (f"/timeline?page={HUGE}", "page"),
        (f"/fragments/jobs?page={HUGE}", "page"),
        ("/jobs/abc", "task_id"),
        ("/runs/abc", "run_id"),
        ("/jobs/{task}?runs_page=" + HUGE, "runs_page"),
    ],
)
def test_console_error_is_an_html_page(browser: TestClient, service: TaskService, path: str, field: str) -> None:
    response = browser.get(path.format(task=_task(service)))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>Bad request" in response.text
    assert f"{field}: " in response.text
    # The page is the console's own: its security headers and a way back.
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert 'href="/"' in response.text


def test_api_errors_stay_json(browser: TestClient) -> None:
    response = browser.get(f"/tasks?offset={HUGE}", headers={"authorization": "Bearer console-s3cret"})
    assert response.status_code == 422
    assert response.json()["field"] == "offset"
    response = browser.get("/tasks/1/logs?limit=abc", headers={"authorization": "Bearer console-s3cret"})
    assert response.status_code == 422
    assert response.json()["field"] == "limit"


def test_anonymous_visitor_is_sent_to_login_before_any_error(anonymous: TestClient) -> None:
    response = anonymous.get("/jobs/abc")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_error_row_shows_its_reason_once(browser: TestClient, service: TaskService, engine: Engine) -> None:
    task_id = _task(service)
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == task_id).values(args="[1,"))
    reason = service.get_task(task_id).schedule_error
    assert reason and reason.startswith("args: ")
    with engine.begin() as conn:  # what beat writes for a row it cannot schedule
        conn.execute(update(Task).where(Task.id == task_id).values(status="error", last_error=reason))
    for path in (f"/jobs/{task_id}", f"/jobs/{task_id}/fragments/live"):
        page = browser.get(path).text
        assert page.count(str(escape(reason))) == 1, path


def test_success_after_retry_labels_the_earlier_error(
    browser: TestClient, service: TaskService, engine: Engine
) -> None:
    run_id = insert_run(
        engine, _task(service), "success", ago(seconds=5), attempt=2, result="'ok'", error="retrying: Retry in 1s"
    )
    page = browser.get(f"/runs/{run_id}").text
    assert "Error of an earlier attempt" in page
    assert "<h2" in page and ">Traceback</h2>" not in page


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("path", ["/jobs/1/typo", "/no/such/page"])
def test_a_browser_at_an_unknown_address_gets_a_page(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path, headers={"accept": BROWSER_ACCEPT})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert f"nothing is served at {path}" in response.text and 'href="/"' in response.text


def test_an_api_client_at_an_unknown_address_gets_json(anonymous: TestClient) -> None:
    for accept in ("*/*", "application/json"):
        response = anonymous.get("/no/such/page", headers={"accept": accept})
        assert response.status_code == 404 and response.json() == {"detail": "Not Found"}
    # The API's own 404s stay JSON for a browser too (the route exists, the task does not).
    response = anonymous.get(
        "/tasks/nosuch", headers={"accept": BROWSER_ACCEPT, "authorization": "Bearer console-s3cret"}
    )
    assert response.status_code == 404 and response.json()["detail"].startswith("no task")
