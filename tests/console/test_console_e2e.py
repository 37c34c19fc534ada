"""The console in a real browser: headless Debian Chromium driven by Playwright, against
``uvicorn api.app:app`` on MariaDB + Redis with a real ``celery beat`` and ``celery worker``.

Screenshots go to a folder this test prints; set ``TABLEBEAT_SCREENSHOTS_TO_DOCS=1`` to also
copy them into ``docs/screenshots/`` (the README shows those).
Never ``playwright install``: the browser is Debian's ``chromium`` package.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from models import ExecuteTask
from service.tasks import TaskService
from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.console.conftest import TOKEN
from tests.processes import REPO, Cluster, api_server, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]

#: The console's promise: a changed row shows on an open page within this many seconds.
LIVE_LIMIT_S = 2.0
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"


@pytest.fixture(scope="module")
def stack(db_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Beat + worker + the API server on one database and broker; yields the server's URL."""
    require_chromium()
    log_dir = tmp_path_factory.mktemp("console-e2e")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_")}
    env.update(
        TABLEBEAT_DATABASE_URL=db_url,
        TABLEBEAT_BROKER_URL=broker_url,
        TABLEBEAT_API_TOKEN=TOKEN,
        PYTHONPATH=str(REPO),
    )
    cluster = Cluster(env, log_dir)
    try:
        cluster.start_worker(concurrency=2)
        beat = cluster.start_beat()
        with api_server(env, log_dir / "api.log") as base:
            wait_for(lambda: "tasks scheduled" in beat.log(), 30, what="beat to load the table")
            yield base
    finally:
        cluster.stop_all()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    folder = tmp_path_factory.mktemp("console-screenshots")
    # Shown even when output is captured, so every run says where its screenshots are.
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nconsole screenshots: {folder}")
    return folder


@pytest.fixture
def page(stack: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(base_url=stack, viewport={"width": 1400, "height": 900})
            tab = context.new_page()
            tab.set_default_timeout(10_000)
            yield tab
        finally:
            browser.close()


def _save(page: object, shots: Path, name: str) -> None:
    path = shots / name
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    if os.environ.get("TABLEBEAT_SCREENSHOTS_TO_DOCS"):
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_SCREENSHOTS / name)


def _sign_in(page) -> None:
    page.goto("/")
    page.wait_for_url("**/login?next=*")
    page.fill("#f-token", TOKEN)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def _create(page, **fields: str) -> None:
    page.goto("/jobs/new")
    for name, value in fields.items():
        if name == "trigger":
            page.select_option("#f-trigger", value)
        else:
            page.fill(f"#f-{name}", value)
    page.click("form.job-form button[type=submit]")


def test_console_in_a_real_browser(page, stack: str, service: TaskService, engine: Engine, shots: Path) -> None:
    from playwright.sync_api import expect

    _sign_in(page)
    # Some rows of every kind, so the jobs page shows what it can.
    service.create_task(
        {
            "task_key": "standup",
            "desc": "standup reminder",
            "execute_func": "test_cron",
            "trigger": "cron",
            "spec": "0 9 * * mon-fri",
            "timezone": "Asia/Shanghai",
        }
    )
    service.create_task(
        {
            "task_key": "quarter-hour",
            "desc": "every 15 minutes",
            "execute_func": "noop",
            "trigger": "cron",
            "spec": "*/15 * * * *",
        }
    )
    service.create_task(
        {
            "task_key": "new-year",
            "desc": "one shot",
            "execute_func": "test_date",
            "trigger": "date",
            "spec": "2031-01-01 00:00:00",
        }
    )

    # Create a job from the form: it lands on its page, which shows a run without a reload.
    _create(
        page,
        task_key="e2e-tick",
        desc="fires every 2 s",
        execute_func="test_interval",
        trigger="interval",
        spec="2",
        args="1,2",
    )
    page.wait_for_url("**/jobs/*?notice=created")
    expect(page.locator(".notice")).to_contain_text("Job created.")
    page.evaluate("window.__not_reloaded = true")
    expect(page.locator("#job-runs .status-success").first).to_be_visible(timeout=20_000)
    expect(page.locator("#job-last .badge")).to_be_visible()  # the latest run, whatever its state
    assert page.evaluate("window.__not_reloaded === true"), "the page reloaded; runs must appear live"
    expect(page.locator("#next-fires li")).to_have_count(10)

    # A failing job: its traceback is one click away.
    _create(page, task_key="e2e-fail", desc="always fails", execute_func="always_fails", trigger="interval", spec="3")
    page.wait_for_url("**/jobs/*?notice=created")
    failed = page.locator("#job-runs details").first
    expect(failed).to_be_visible(timeout=20_000)
    failed.locator("summary").click()
    traceback = failed.locator("pre.traceback")
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("RuntimeError")
    expect(traceback).to_contain_text("failed on purpose")
    expect(page.locator(".timeline .run-failed").first).to_be_attached(timeout=5_000)
    page.wait_for_timeout(1_500)  # let a poll swap the runs: the traceback stays open
    expect(page.locator("#job-runs details[open] pre.traceback").first).to_be_visible()
    _save(page, shots, "job-page.png")

    # A validation error is shown at its field, and the row keeps its old value.
    page.select_option("#f-trigger", "cron")
    page.fill("#f-spec", "61 * * * *")
    page.click("form.job-form button[type=submit]")
    error = page.locator("#error-spec")
    expect(error).to_be_visible()
    expect(error).to_contain_text("minute")
    expect(page.locator("#field-spec")).to_have_class("field invalid")
    assert service.get_task("e2e-fail").spec == "3"

    # Pause the ticking job: its status says so and it stops firing.
    tick_id = service.get_task("e2e-tick").id
    page.goto(f"/jobs/{tick_id}")
    page.click("#pause-button")
    page.wait_for_url("**notice=paused")
    expect(page.locator("#job-status .badge")).to_have_text("paused")
    expect(page.locator("#resume-button")).to_be_visible()
    paused_at = datetime.now(UTC)
    # Beat claims fires up to 2 s ahead, so rows up to then may exist; none may be scheduled later.
    wait_for(lambda: datetime.now(UTC) > paused_at + timedelta(seconds=6), 10, what="three fires' time to pass")
    assert not _runs(engine, tick_id, after=paused_at + timedelta(seconds=2.5)), "a paused job fired"

    # The jobs page: every job, and a changed row appears within 2 s without a reload.
    page.goto("/")
    expect(page.locator("tr[data-key=e2e-tick] .status .badge")).to_have_text("paused")
    expect(page.locator("tr[data-key=standup]")).to_contain_text("at 09:00 Mon-Fri (Asia/Shanghai)")
    expect(page.locator("tr[data-key=e2e-fail] .last .status-failed")).to_be_visible()
    page.evaluate("window.__not_reloaded = true")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(ExecuteTask).values(
                task_id=tick_id,
                status="lost",
                scheduled_at=now,
                trace_id="e2e-lost",
                extra="{}",
                attempt=1,
                create_at=now,
                update_at=now,
            )
        )
    changed_at = time.monotonic()
    expect(page.locator("tr[data-key=e2e-tick] .last .status-lost")).to_be_visible(timeout=LIVE_LIMIT_S * 1000)
    seen_after = time.monotonic() - changed_at
    assert seen_after <= LIVE_LIMIT_S
    assert page.evaluate("window.__not_reloaded === true")
    expect(page.locator("#system-chart")).to_contain_text("failed")
    _save(page, shots, "jobs-page.png")

    page.goto("/timeline")
    expect(page.locator("svg.timeline").first).to_be_visible()
    expect(page.locator("svg.timeline .run-failed").first).to_be_attached()
    # The hour axis spans the timeline column only: "now" is centred over the now line.
    label = page.locator(".axis .now").first.bounding_box()
    line = page.locator("svg.timeline line.now").first.bounding_box()
    label_x, line_x = label["x"] + label["width"] / 2, line["x"] + line["width"] / 2
    assert abs(label_x - line_x) <= 2, f"'now' label at x={label_x:.1f}, now line at x={line_x:.1f}"
    _save(page, shots, "timeline.png")


def _runs(engine: Engine, task_id: int, after: datetime | None = None) -> int:
    """How many runs the task has (scheduled later than ``after``, when given)."""
    query = select(ExecuteTask.id).where(ExecuteTask.task_id == task_id)
    if after is not None:
        query = query.where(ExecuteTask.scheduled_at > after)
    with engine.connect() as conn:
        return len(conn.execute(query).all())


def test_login_cookie_is_secure_httponly_strict_in_the_browser(page, stack: str) -> None:
    _sign_in(page)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["tb_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
    assert TOKEN not in session["value"]
    assert page.evaluate("document.cookie") == ""  # nothing readable by scripts
