"""A console route that refuses its input answers with an HTML page naming the field, not JSON."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.tasks import TaskService

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
