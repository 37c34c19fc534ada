"""Every console route through FastAPI's TestClient on MariaDB + Redis: pages, forms, auth, CSRF."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from models import ExecuteTask, Task
from service.tasks import TaskService
from tests.api.ops_env import ago, insert_run
from tests.console.conftest import TOKEN, csrf_of

pytestmark = pytest.mark.mariadb

FORM = {
    "task_key": "report",
    "desc": "nightly report",
    "execute_func": "test_interval",
    "trigger": "interval",
    "spec": "5m",
    "args": "1,2,3",
    "kwargs": "{}",
    "timezone": "",
    "queue": "",
    "extra": "{}",
    "max_instances": "1",
    "misfire_grace_seconds": "",
    "expires_seconds": "",
    "is_valid": "1",
}


def make_task(service: TaskService, key: str = "report", **fields: object) -> int:
    body = {"task_key": key, "execute_func": "test_interval", "trigger": "interval", "spec": "5m", **fields}
    return service.create_task(body).id


def submit(client: TestClient, page_url: str, action: str, data: dict[str, str]):
    """Send a form the way a browser does: with the CSRF token of the page it is on."""
    token = csrf_of(client.get(page_url).text)
    return client.post(action, data={**data, "csrf_token": token})


def replace_cookie(client: TestClient, name: str, value: str) -> None:
    for cookie in list(client.cookies.jar):
        if cookie.name == name:
            client.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    client.cookies.set(name, value, domain="testserver.local", path="/")


def field_error(html: str, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="error-{field}"[^>]*>(.*?)</p>', html, re.DOTALL)
    assert found, f"no error shown at field {field!r}"
    return found.group(1)


# --- sign-in ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/timeline",
        "/jobs/new",
        "/jobs/1",
        "/jobs/1/delete",
        "/fragments/jobs",
        "/fragments/chart",
        "/fragments/timeline",
        "/jobs/1/fragments/live",
        "/jobs/1/fragments/runs",
    ],
)
def test_every_page_requires_sign_in(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_htmx_fragment_without_session_redirects_the_page(anonymous: TestClient) -> None:
    response = anonymous.get("/fragments/jobs", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"].startswith("/login")


@pytest.mark.parametrize(
    "action", ["/jobs/new", "/jobs/1", "/jobs/1/pause", "/jobs/1/resume", "/jobs/1/run", "/jobs/1/delete"]
)
def test_every_form_requires_sign_in(anonymous: TestClient, action: str) -> None:
    page = anonymous.get("/login")
    response = anonymous.post(action, data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_login_sets_a_secure_httponly_strict_cookie(anonymous: TestClient) -> None:
    page = anonymous.get("/login?next=/timeline")
    assert page.status_code == 200
    response = anonymous.post("/login", data={"token": TOKEN, "next": "/timeline", "csrf_token": csrf_of(page.text)})
    assert response.status_code == 303
    assert response.headers["location"] == "/timeline"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("tb_session="))
    assert TOKEN not in cookie
    lowered = cookie.lower()
    assert "httponly" in lowered and "secure" in lowered and "samesite=strict" in lowered
    assert anonymous.get("/timeline").status_code == 200


def test_wrong_token_is_refused_at_the_field(anonymous: TestClient) -> None:
    page = anonymous.get("/login")
    response = anonymous.post("/login", data={"token": "guess", "next": "/", "csrf_token": csrf_of(page.text)})
    assert response.status_code == 401
    assert "is not the API token" in field_error(response.text, "token")
    assert anonymous.get("/").status_code == 303


def test_login_refuses_a_redirect_off_site(anonymous: TestClient) -> None:
    page = anonymous.get("/login")
    response = anonymous.post(
        "/login", data={"token": TOKEN, "next": "//evil.example/", "csrf_token": csrf_of(page.text)}
    )
    assert response.headers["location"] == "/"


def test_bearer_header_works_like_the_api(anonymous: TestClient) -> None:
    assert anonymous.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert anonymous.get("/", headers={"Authorization": "Bearer nope"}).status_code == 303


def test_logout_ends_the_session(browser: TestClient) -> None:
    response = submit(browser, "/", "/logout", {})
    assert response.status_code == 303
    assert browser.get("/").status_code == 303


def test_forged_session_cookie_is_refused(anonymous: TestClient) -> None:
    replace_cookie(anonymous, "tb_session", f"{int(time.time())}.abc.{'0' * 64}")
    assert anonymous.get("/").status_code == 303


def test_open_console_without_a_token(settings, service: TaskService, engine: Engine) -> None:
    from api.app import create_app
    from api.settings import ApiSettings

    open_settings = ApiSettings(settings.service, api_token=None)
    with TestClient(create_app(open_settings, service=service), base_url="https://testserver") as client:
        assert client.get("/").status_code == 200
        assert client.get("/login", follow_redirects=False).status_code == 303
        # Open, but forms still need the CSRF token.
        assert client.post("/jobs/new", data=FORM).status_code == 403
        created = submit(client, "/jobs/new", "/jobs/new", FORM)
        assert created.status_code == 200  # followed to the job page
        assert "Job created." in created.text


# --- CSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        "/jobs/new",
        "/jobs/{id}",
        "/jobs/{id}/pause",
        "/jobs/{id}/resume",
        "/jobs/{id}/run",
        "/jobs/{id}/delete",
        "/logout",
    ],
)
def test_every_form_rejects_a_missing_or_wrong_csrf_token(
    browser: TestClient, service: TaskService, action: str
) -> None:
    task_id = make_task(service)
    url = action.format(id=task_id)
    data = {**FORM, "confirm": "yes"}
    missing = browser.post(url, data=data)
    assert missing.status_code == 403
    assert "CSRF token is missing or wrong" in missing.text
    wrong = browser.post(url, data={**data, "csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert service.get_task(task_id).is_valid  # nothing changed
    assert service.get_task(task_id).spec == "300"


def test_csrf_token_from_another_browser_is_refused(browser: TestClient, service: TaskService) -> None:
    task_id = make_task(service)
    token = csrf_of(browser.get("/").text)
    replace_cookie(browser, "tb_csrf", "another-browser")
    assert browser.post(f"/jobs/{task_id}/pause", data={"csrf_token": token}).status_code == 403


def test_cross_site_origin_is_refused(browser: TestClient, service: TaskService) -> None:
    task_id = make_task(service)
    token = csrf_of(browser.get("/").text)
    response = browser.post(
        f"/jobs/{task_id}/pause", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert "another site" in response.text


def test_login_form_needs_csrf_too(anonymous: TestClient) -> None:
    anonymous.get("/login")
    assert anonymous.post("/login", data={"token": TOKEN, "next": "/"}).status_code == 403


# --- jobs page ----------------------------------------------------------------------------


def test_jobs_page_lists_every_column(browser: TestClient, service: TaskService, engine: Engine) -> None:
    ok_id = make_task(service, "every-five", desc="five minutely", spec="*/5 * * * *", trigger="cron")
    tz_id = make_task(service, "standup", trigger="cron", spec="0 9 * * mon-fri", timezone="Asia/Shanghai")
    bad_id = make_task(service, "broken")
    soon = ago(seconds=-30)
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == ok_id).values(next_run_at=soon))
        conn.execute(
            update(Task).where(Task.id == bad_id).values(status="error", last_error="spec: cron field 'minute' bad")
        )
    insert_run(engine, ok_id, "success", ago(minutes=5), started_at=ago(minutes=5), finished_at=ago(minutes=4))
    insert_run(engine, ok_id, "failed", ago(minutes=1), started_at=ago(seconds=60), finished_at=ago(seconds=58))
    insert_run(engine, ok_id, "pending", ago(seconds=1))  # under way: the outcome is still the failure

    page = browser.get("/")
    assert page.status_code == 200
    html = page.text
    assert "every-five" in html and "five minutely" in html
    assert "every 5 minutes" in html
    assert "at 09:00 Mon-Fri (Asia/Shanghai)" in html
    assert "spec: cron field &#39;minute&#39; bad" in html  # last_error of the error row
    row = re.search(rf'<tr id="job-{ok_id}".*?</tr>', html, re.DOTALL).group(0)
    assert "in 2" in row or "in 3" in row  # relative next fire
    assert " UTC</time>" in row  # absolute next fire
    assert "status-failed" in row and "2.00 s" in row  # last run outcome and duration
    assert "· a newer run is queued" in row and "next pending" not in row
    assert 'role="switch" aria-checked="true"' in row
    assert f"/jobs/{tz_id}/pause" in html
    assert "Content-Security-Policy" in page.headers
    assert "system-chart" in html


def test_jobs_page_filters_sorts_and_pages(browser: TestClient, service: TaskService, engine: Engine) -> None:
    ids = [make_task(service, f"job-{n:02d}", desc="alpha" if n % 2 else "beta") for n in range(25)]
    with engine.begin() as conn:
        for n, task_id in enumerate(ids):
            conn.execute(update(Task).where(Task.id == task_id).values(next_run_at=ago(seconds=-(1000 - n * 10))))
    service.pause_task(ids[0])

    first = browser.get("/?per_page=20").text
    keys = re.findall(r'data-key="([^"]+)"', first)
    assert len(keys) == 20
    assert keys[0] == "job-24"  # soonest next fire first
    assert "page 1 of 2" in first and "25 jobs" in first
    second = browser.get("/?per_page=20&page=2").text
    assert re.findall(r'data-key="([^"]+)"', second)[-1] == "job-00"  # paused: no next fire, last

    paused = re.findall(r'data-key="([^"]+)"', browser.get("/?status=paused").text)
    assert paused == ["job-00"]
    alpha = re.findall(r'data-key="([^"]+)"', browser.get("/?q=alpha&per_page=100").text)
    assert len(alpha) == 12 and all(int(k[4:]) % 2 for k in alpha)
    by_key = re.findall(r'data-key="([^"]+)"', browser.get("/?sort=key&per_page=20").text)
    assert by_key == sorted(by_key)
    assert "No jobs match." in browser.get("/?q=nothing-like-this").text


def test_jobs_fragment_and_chart_for_polling(browser: TestClient, service: TaskService, engine: Engine) -> None:
    task_id = make_task(service)
    insert_run(engine, task_id, "failed", ago(seconds=30), create_at=ago(seconds=30))
    fragment = browser.get("/fragments/jobs?status=ready")
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section id="jobs-live"')
    assert 'hx-trigger="every 1s"' in fragment.text and "status=ready" in fragment.text
    chart = browser.get("/fragments/chart").text
    assert "1 runs, 1 failed" in chart
    assert "<polyline" in chart


def test_switch_pauses_and_resumes_back_to_the_list(browser: TestClient, service: TaskService) -> None:
    task_id = make_task(service)
    response = submit(browser, "/", f"/jobs/{task_id}/pause", {"next": "/?status=ready"})
    assert response.status_code == 303
    assert response.headers["location"] == "/?status=ready&notice=paused"
    assert not service.get_task(task_id).is_valid
    submit(browser, "/", f"/jobs/{task_id}/resume", {"next": "https://evil.example/"})
    assert service.get_task(task_id).is_valid


# --- timeline -----------------------------------------------------------------------------


def test_timeline_colours_runs_by_outcome(browser: TestClient, service: TaskService, engine: Engine) -> None:
    task_id = make_task(service, spec="1h")
    insert_run(engine, task_id, "success", ago(hours=5))
    # Both well inside one 15-minute bucket (buckets start at now - 24 h; 2 h ago is a boundary).
    insert_run(engine, task_id, "failed", ago(hours=2, minutes=-5))
    insert_run(engine, task_id, "success", ago(hours=2, minutes=-6))
    insert_run(engine, task_id, "success", ago(hours=30))  # outside the window
    html = browser.get("/timeline").text
    svg = re.search(r'<svg class="timeline".*?</svg>', html, re.DOTALL).group(0)
    assert svg.count("run-success") == 1
    assert svg.count("run-failed") == 1  # the bucket with a failure shows it
    assert "1 failed, 1 success" in svg or "1 success, 1 failed" in svg
    assert svg.count("run-planned") == 24  # hourly: 24 planned fires in the next 24 h
    assert browser.get("/fragments/timeline").status_code == 200


# --- creating a job -----------------------------------------------------------------------


def test_create_job_from_the_form(browser: TestClient, service: TaskService) -> None:
    form = browser.get("/jobs/new").text
    assert 'option value="test_interval"' in form  # registered jobs offered
    response = submit(browser, "/jobs/new", "/jobs/new", FORM)
    assert response.status_code == 303
    created = service.get_task("report")
    assert response.headers["location"] == f"/jobs/{created.id}?notice=created"
    assert (created.spec, created.args, created.desc) == ("300", "1,2,3", "nightly report")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spec", "*/5 * * *", "spec: "),
        ("execute_func", "os.system", "is not a registered job"),
        ("timezone", "Mars/Base", "timezone: "),
        ("kwargs", "[1]", "kwargs: "),
        ("max_instances", "many", "max_instances: must be a whole number"),
        ("task_key", "", "task_key: "),
    ],
)
def test_create_shows_the_validation_error_at_its_field(
    browser: TestClient, service: TaskService, field: str, value: str, message: str
) -> None:
    data = {**FORM, field: value}
    if field == "spec":
        data["trigger"] = "cron"
    response = submit(browser, "/jobs/new", "/jobs/new", data)
    assert response.status_code == 422
    assert message in field_error(response.text, field)
    assert f'value="{value}"' in response.text or f">{value}</textarea>" in response.text  # what was typed is kept
    assert service.list_tasks().total == 0


def test_duplicate_key_is_shown_at_task_key(browser: TestClient, service: TaskService) -> None:
    make_task(service)
    response = submit(browser, "/jobs/new", "/jobs/new", FORM)
    assert response.status_code == 409
    assert "already exists" in field_error(response.text, "task_key")


# --- one job ------------------------------------------------------------------------------


def test_job_page_shows_facts_fires_runs_and_timeline(
    browser: TestClient, service: TaskService, engine: Engine
) -> None:
    task_id = make_task(service, desc="the report")
    failed_at = ago(minutes=3)
    insert_run(
        engine,
        task_id,
        "failed",
        failed_at,
        trace_id="trace-abc123",
        started_at=failed_at + timedelta(seconds=2),
        finished_at=failed_at + timedelta(seconds=3),
        error='Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: boom',
    )
    insert_run(engine, task_id, "success", ago(minutes=8), result="interval ok [1]")
    page = browser.get(f"/jobs/{task_id}")
    assert page.status_code == 200
    html = page.text
    assert "every 5 minutes" in html and "the report" in html
    assert len(re.findall(r"<li><time", re.search(r'<ol class="fires".*?</ol>', html, re.DOTALL).group(0))) == 10
    assert "trace-abc123" in html
    assert "+2.00 s" in html  # lateness: started - scheduled
    assert "1.00 s" in html  # duration
    assert '<details id="traceback-' in html and "RuntimeError: boom</summary>" in html
    assert "interval ok [1]" in html
    assert '<svg class="timeline"' in html and "run-failed" in html
    assert 'value="the report"' in html  # the edit form is filled in


def test_job_runs_are_paged_and_polled_with_204_when_unchanged(
    browser: TestClient, service: TaskService, engine: Engine
) -> None:
    task_id = make_task(service)
    for minutes in range(25):
        insert_run(engine, task_id, "success", ago(minutes=minutes + 1))
    first = browser.get(f"/jobs/{task_id}/fragments/runs")
    assert first.status_code == 200
    assert first.text.count('class="run-row"') == 20 and "page 1 of 2" in first.text
    version = re.search(r"v=([0-9a-f]{16})", first.text).group(1)
    assert browser.get(f"/jobs/{task_id}/fragments/runs?v={version}").status_code == 204
    insert_run(engine, task_id, "running", ago(seconds=1))
    changed = browser.get(f"/jobs/{task_id}/fragments/runs?v={version}")
    assert changed.status_code == 200 and "status-running" in changed.text
    older = browser.get(f"/jobs/{task_id}?runs_page=2").text
    assert older.count('class="run-row"') == 6
    live = browser.get(f"/jobs/{task_id}/fragments/live")
    assert live.status_code == 200 and 'id="job-status"' in live.text


def test_edit_saves_through_the_service(browser: TestClient, service: TaskService) -> None:
    task_id = make_task(service)
    response = submit(
        browser,
        f"/jobs/{task_id}",
        f"/jobs/{task_id}",
        {**FORM, "trigger": "cron", "spec": "0 9 * * mon-fri", "timezone": "Asia/Shanghai", "is_valid": ""},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/jobs/{task_id}?notice=saved"
    task = service.get_task(task_id)
    assert (task.trigger, task.spec, task.timezone, task.is_valid) == (
        "cron",
        "0 9 * * mon-fri",
        "Asia/Shanghai",
        False,
    )
    assert "Saved." in browser.get(response.headers["location"]).text


def test_edit_error_is_shown_at_the_field_and_nothing_changes(browser: TestClient, service: TaskService) -> None:
    task_id = make_task(service)
    response = submit(
        browser, f"/jobs/{task_id}", f"/jobs/{task_id}", {**FORM, "trigger": "cron", "spec": "61 * * * *"}
    )
    assert response.status_code == 422
    error = field_error(response.text, "spec")
    assert "minute" in error and "61" in error
    assert 'value="61 * * * *"' in response.text
    assert service.get_task(task_id).spec == "300"


def test_run_now_dispatches_and_reports_the_trace(browser: TestClient, service: TaskService, engine: Engine) -> None:
    task_id = make_task(service)
    response = submit(browser, f"/jobs/{task_id}", f"/jobs/{task_id}/run", {})
    assert response.status_code == 303
    with engine.connect() as conn:
        run = conn.execute(select(ExecuteTask).where(ExecuteTask.task_id == task_id)).one()
    assert f"run={run.id}" in response.headers["location"]
    page = browser.get(response.headers["location"]).text
    assert f"Run #{run.id} dispatched (trace {run.trace_id})" in page


def test_run_now_of_an_unrunnable_row_shows_why(browser: TestClient, service: TaskService, engine: Engine) -> None:
    task_id = make_task(service)
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == task_id).values(execute_func="gone_job"))
    response = submit(browser, f"/jobs/{task_id}", f"/jobs/{task_id}/run", {})
    assert response.status_code == 422
    assert "is not a registered job" in response.text


def test_pause_and_resume_from_the_job_page(browser: TestClient, service: TaskService) -> None:
    task_id = make_task(service)
    paused = submit(browser, f"/jobs/{task_id}", f"/jobs/{task_id}/pause", {})
    assert paused.headers["location"] == f"/jobs/{task_id}?notice=paused"
    assert service.get_task(task_id).status == "paused"
    assert "Resume" in browser.get(f"/jobs/{task_id}").text
    submit(browser, f"/jobs/{task_id}", f"/jobs/{task_id}/resume", {})
    assert service.get_task(task_id).is_valid


def test_delete_asks_first(browser: TestClient, service: TaskService) -> None:
    task_id = make_task(service)
    confirm = browser.get(f"/jobs/{task_id}/delete")
    assert confirm.status_code == 200 and "Delete report?" in confirm.text
    not_confirmed = submit(browser, f"/jobs/{task_id}/delete", f"/jobs/{task_id}/delete", {})
    assert not_confirmed.headers["location"] == f"/jobs/{task_id}/delete"
    assert service.get_task(task_id)
    done = submit(browser, f"/jobs/{task_id}/delete", f"/jobs/{task_id}/delete", {"confirm": "yes"})
    assert done.status_code == 303
    assert "Deleted job report." in browser.get(done.headers["location"]).text
    assert service.list_tasks().total == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/jobs/999999"),
        ("get", "/jobs/999999/delete"),
        ("get", "/jobs/999999/fragments/live"),
        ("post", "/jobs/999999/pause"),
        ("post", "/jobs/999999/run"),
        ("post", "/jobs/999999/delete"),
    ],
)
def test_unknown_job_is_a_404_page(browser: TestClient, method: str, path: str) -> None:
    if method == "get":
        response = browser.get(path)
    else:
        response = submit(browser, "/", path, {"confirm": "yes"})
    assert response.status_code == 404
    assert "No such job" in response.text


def test_static_assets_are_served_locally(browser: TestClient) -> None:
    htmx = browser.get("/static/console/htmx.min.js")
    assert htmx.status_code == 200 and "0BSD" in htmx.text[:300]
    assert browser.get("/static/console/console.css").status_code == 200
    assert browser.get("/static/console/..%2Fpages.py").status_code == 404
    assert "https://" not in browser.get("/").text.split("<main>")[0]  # nothing loaded from the internet


def test_console_routes_stay_out_of_the_api_docs(browser: TestClient) -> None:
    paths = browser.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/jobs") for p in paths)
