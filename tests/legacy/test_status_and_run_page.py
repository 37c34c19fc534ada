"""Status tells the truth (``doing`` while any run is running), run now stamps ``last_run_at``, and the
console's run page (``/runs/{id}``, where alerts link) in headless Chromium."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from conf.settings import Settings
from service.tasks import TaskService
from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.helpers import sql
from tests.processes import REPO, Cluster, api_server, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]
TOKEN = "run-page-token"


def now_naive() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_status_is_doing_while_a_run_is_running_even_after_the_next_claim(legacy_cluster: Cluster, db: Engine) -> None:
    sql(
        db,
        "INSERT INTO task (task_key, execute_func, `trigger`, spec, args, is_valid, status, extra) "
        "VALUES ('long_runs', 'sleep_for', 'interval', '2', '5', 1, 'ready', '{}')",
    )
    task_id = sql(db, "SELECT id FROM task WHERE task_key = 'long_runs'")[0][0]

    def running_since() -> datetime | None:
        rows = sql(db, "SELECT started_at FROM execute_task WHERE task_id = :t AND status = 'running'", t=task_id)
        return rows[0][0] if rows else None

    started = wait_for(running_since, 40, what="a run to start")
    # While the 5 s run goes on, beat claims the fires at +2 s and +4 s (skipped: max_instances 1).
    samples = []
    deadline = started + timedelta(seconds=4.5)
    while now_naive() < deadline:
        if now_naive() > started + timedelta(seconds=0.8):
            samples.append(sql(db, "SELECT status FROM task WHERE id = :t", t=task_id)[0][0])
        time.sleep(0.2)
    claimed = sql(
        db, "SELECT COUNT(*) FROM execute_task WHERE task_id = :t AND scheduled_at > :s", t=task_id, s=started
    )
    assert claimed[0][0] >= 1, "beat claimed no fire while the run was running"
    assert samples and set(samples) == {"doing"}, samples
    # No more fires: once the last run finishes the task reads ready again.
    sql(db, "UPDATE task SET spec = '3600' WHERE id = :t", t=task_id)

    def idle() -> bool:
        running = sql(db, "SELECT COUNT(*) FROM execute_task WHERE task_id = :t AND status = 'running'", t=task_id)
        return running[0][0] == 0 and sql(db, "SELECT status FROM task WHERE id = :t", t=task_id)[0][0] == "ready"

    wait_for(idle, 30, what="status ready after the last run")


def test_run_now_updates_last_run_at(mariadb_url: str, broker_url: str, db: Engine) -> None:
    service = TaskService(Settings(database_url=mariadb_url, broker_url=broker_url))
    try:
        service.create_task(
            {"task_key": "manual", "execute_func": "noop", "trigger": "cron", "spec": "0 0 1 1 *", "is_valid": 0}
        )
        before = datetime.now(UTC)
        started = service.run_task("manual")
        task = service.get_task("manual")
        assert task.last_run_at is not None and before - timedelta(seconds=1) <= task.last_run_at <= datetime.now(UTC)
        assert started.run_id > 0
    finally:
        service.close()


@pytest.fixture(scope="module")
def api_url(mariadb_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_")}
    env.update(
        TABLEBEAT_DATABASE_URL=mariadb_url,
        TABLEBEAT_BROKER_URL=broker_url,
        TABLEBEAT_API_TOKEN=TOKEN,
        PYTHONPATH=str(REPO),
    )
    with api_server(env, tmp_path_factory.mktemp("run-page") / "api.log") as base:
        yield base


def test_run_page_in_chromium(legacy_cluster: Cluster, db: Engine, api_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    sql(
        db,
        "INSERT INTO task (task_key, execute_func, `trigger`, spec, is_valid, status, extra) "
        "VALUES ('fails_for_page', 'always_fails', 'interval', '1', 1, 'ready', '{}')",
    )
    task_id = sql(db, "SELECT id FROM task WHERE task_key = 'fails_for_page'")[0][0]
    run_id, trace_id = wait_for(
        lambda: sql(db, "SELECT id, trace_id FROM execute_task WHERE task_id = :t AND status = 'failed'", t=task_id),
        40,
        what="a failed run",
    )[0]
    sql(db, "UPDATE task SET is_valid = 0 WHERE id = :t", t=task_id)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(base_url=api_url).new_page()
            page.set_default_timeout(10_000)
            page.goto(f"/runs/{run_id}")
            page.wait_for_url("**/login?next=*")
            page.fill("#f-token", TOKEN)
            page.click("form[action='/login'] button[type=submit]")
            page.wait_for_url(f"**/runs/{run_id}")
            expect(page.locator("#run-trace")).to_have_text(trace_id)
            expect(page.locator("#run-status")).to_have_text("failed")
            expect(page.locator("#run-traceback")).to_contain_text("failed on purpose")
            expect(page.locator("#run-duration")).not_to_have_text("")
            page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
            page.click("#run-task-link")
            page.wait_for_url(f"**/jobs/{task_id}")
            expect(page.locator(f"a[href='/runs/{run_id}']")).to_have_count(1)
            page.goto("/runs/999999999")
            expect(page.locator("h1")).to_have_text("No such run")
        finally:
            browser.close()
