"""The console shows a task's ``last_error`` whatever its status: beat's note that its runs wait
on a queue no live worker consumes (issue 9 item 1) is on a ``ready`` task."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from models import Task
from scheduler.sweeps import no_consumer_message
from service.tasks import TaskService
from tests.console.test_console_pages import make_task


def test_queue_without_consumer_shows_on_jobs_list_and_job_page(
    browser: TestClient, service: TaskService, engine: Engine
) -> None:
    task_id = make_task(service, "routed-nowhere")
    note = no_consumer_message("nope")
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == task_id).values(status="ready", queue="nope", last_error=note))
    expected = note.replace("'", "&#39;")
    listing = browser.get("/")
    assert listing.status_code == 200 and expected in listing.text
    page = browser.get(f"/jobs/{task_id}")
    assert page.status_code == 200 and expected in page.text
