"""Console paging values beyond what the database takes: 422 naming the parameter (issue 9 item 6)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.tasks import TaskService

pytestmark = pytest.mark.mariadb

HUGE = ["99999999999999999999", "18446744073709551616", "500000000000000000"]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("path", ["/?page={}", "/timeline?page={}", "/fragments/jobs?page={}"])
def test_huge_page_is_422_naming_page(browser: TestClient, path: str, value: str) -> None:
    response = browser.get(path.format(value))
    assert response.status_code == 422, response.text[:300]
    assert "page" in response.text


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("path", ["/jobs/{}?runs_page={}", "/jobs/{}/fragments/runs?runs_page={}"])
def test_huge_runs_page_is_422_naming_runs_page(
    browser: TestClient, service: TaskService, path: str, value: str
) -> None:
    task_id = service.create_task(
        {"task_key": "r", "execute_func": "test_interval", "trigger": "interval", "spec": "5"}
    ).id
    response = browser.get(path.format(task_id, value))
    assert response.status_code == 422, response.text[:300]
    assert "runs_page" in response.text


def test_ordinary_pages_still_work(browser: TestClient, service: TaskService) -> None:
    task_id = service.create_task(
        {"task_key": "r", "execute_func": "test_interval", "trigger": "interval", "spec": "5"}
    ).id
    for path in ("/?page=3", "/timeline?page=2", f"/jobs/{task_id}?runs_page=4", "/?page=abc"):
        assert browser.get(path).status_code == 200, path
