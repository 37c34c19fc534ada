"""Issue 10, items 1, 2 and 4 through FastAPI's TestClient: cross-site writes, Host allow-list,
the per-request loopback check, and what ``/health`` tells a stranger.

The client's base URL is the address the issue attacked (``http://127.0.0.1:18001``): the
TestClient reports it as the socket the request arrived on, as uvicorn does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from api.app import create_app
from api.guard import host_name
from api.settings import ApiSettings
from models import ExecuteTask, Task
from service.tasks import TaskService
from tests.api.conftest import TOKEN

pytestmark = pytest.mark.mariadb

BASE = "http://127.0.0.1:18001"
EVIL_FORM = {"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(params=["no-token", "token"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def attacked(mode: str, settings: ApiSettings, service: TaskService, engine: Engine) -> Iterator[TestClient]:
    """The API as the issue attacked it (no token, or a token the attacker's page cannot know
    but the operator's browser could hold as a console session), with task ``x1``."""
    from tests.api.ops_env import clear_tables

    clear_tables(engine)
    token = None if mode == "no-token" else TOKEN
    app = create_app(ApiSettings(settings.service, api_token=token), service=service)
    with TestClient(app, base_url=BASE) as client:
        auth = {} if token is None else {"Authorization": f"Bearer {TOKEN}"}
        created = client.post(
            "/tasks",
            json={"task_key": "x1", "execute_func": "test_interval", "trigger": "interval", "spec": "1h"},
            headers={**auth, "Origin": BASE},
        )
        assert created.status_code == 201, created.text
        client.headers.update(auth)
        yield client


def runs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ExecuteTask)).scalar_one())


def is_valid(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(select(Task.is_valid).where(Task.task_key == "x1")).scalar_one())


# --- item 1: the requests of the issue, replayed --------------------------------------------


def test_cross_site_form_post_to_run_is_refused(attacked: TestClient, engine: Engine) -> None:
    # curl -X POST -H 'Origin: http://evil.example' -H 'Content-Type: application/x-www-form-urlencoded'
    #      --data '' http://127.0.0.1:18001/tasks/x1/run   -> was 202 and a run
    response = attacked.post("/tasks/x1/run", headers=EVIL_FORM, content=b"")
    assert response.status_code == 403, response.text
    assert "evil.example" in response.json()["detail"]
    assert runs(engine) == 0


def test_cross_site_form_post_to_pause_is_refused(attacked: TestClient, engine: Engine) -> None:
    response = attacked.post("/tasks/x1/pause", headers=EVIL_FORM, content=b"")
    assert response.status_code == 403, response.text
    assert is_valid(engine)


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", **JSON},  # a modern browser names the sender even without Origin
        {"Sec-Fetch-Site": "same-site", **JSON},  # another port or subdomain is another origin
        {"Origin": "null", **JSON},  # sandboxed frames and file:// pages
        {"Origin": "http://127.0.0.1:9999", **JSON},  # another local app
    ],
)
def test_other_cross_site_signals_are_refused(attacked: TestClient, engine: Engine, headers: dict[str, str]) -> None:
    for path in ("/tasks/x1/run", "/tasks/x1/pause"):
        assert attacked.post(path, headers=headers).status_code == 403
    assert attacked.delete("/tasks/x1", headers=headers).status_code == 403
    assert runs(engine) == 0 and is_valid(engine)


@pytest.mark.parametrize(
    "content_type", [None, "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"]
)
def test_writes_without_a_json_content_type_are_refused(
    attacked: TestClient, engine: Engine, content_type: str | None
) -> None:
    # What an HTML form (or a no-cors fetch) can send, even when its Origin is stripped by a proxy.
    headers = {} if content_type is None else {"Content-Type": content_type}
    for path in ("/tasks/x1/run", "/tasks/x1/pause"):
        response = attacked.post(path, headers=headers, content=b"")
        assert response.status_code == 415, response.text
        assert "application/json" in response.json()["detail"]
    assert runs(engine) == 0 and is_valid(engine)


def test_same_site_json_writes_work(attacked: TestClient, engine: Engine) -> None:
    for headers in (
        JSON,
        {**JSON, "Origin": BASE, "Sec-Fetch-Site": "same-origin"},
        {**JSON, "Sec-Fetch-Site": "none"},
    ):
        assert attacked.post("/tasks/x1/run", headers=headers).status_code == 202
    assert attacked.post("/tasks/x1/pause", headers=JSON).status_code == 200
    assert runs(engine) == 3 and not is_valid(engine)


@pytest.mark.parametrize("path", ["/tasks", "/", "/health", "/docs"])
def test_rebound_host_is_refused(attacked: TestClient, path: str) -> None:
    # DNS rebinding: the attacker's name now resolves to 127.0.0.1, but the browser sends it as Host.
    response = attacked.get(path, headers={"Host": "rebind.evil.example:18001"})
    assert response.status_code == 400
    assert "TABLEBEAT_ALLOWED_HOSTS" in response.json()["detail"]


@pytest.mark.parametrize("host", ["127.0.0.1:18001", "localhost:18001", "[::1]:18001", "LOCALHOST", "127.0.0.1"])
def test_loopback_hosts_are_answered(attacked: TestClient, host: str) -> None:
    assert attacked.get("/tasks", headers={"Host": host}).status_code == 200


def test_allowed_hosts_setting(settings: ApiSettings, service: TaskService) -> None:
    configured = ApiSettings(settings.service, api_token=TOKEN, allowed_hosts=("sched.example.com", ".corp.example"))
    client = TestClient(create_app(configured, service=service), base_url=BASE)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for host in ("sched.example.com", "sched.example.com:443", "corp.example", "a.b.corp.example:8000"):
        assert client.get("/tasks", headers={**auth, "Host": host}).status_code == 200, host
    for host in ("evil.example", "sched.example.com.evil.example", "notcorp.example"):
        assert client.get("/tasks", headers={**auth, "Host": host}).status_code == 400, host


def test_the_bound_address_is_an_allowed_host(settings: ApiSettings, service: TaskService) -> None:
    # Serving on 10.1.2.3 (with a token): clients that use the address reach it; other names do not.
    client = TestClient(create_app(settings, service=service), base_url="http://10.1.2.3:8000")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/tasks", headers=auth).status_code == 200
    assert client.get("/tasks", headers={**auth, "Host": "10.9.9.9:8000"}).status_code == 400


def test_host_name_parsing() -> None:
    assert host_name("Example.COM:8000") == "example.com"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("::1") == "::1"
    assert host_name("localhost.") == "localhost"
    assert host_name("") == ""


# --- item 2, per request: no open API off loopback ---------------------------------------------


def test_without_token_nothing_is_answered_on_a_public_address(settings: ApiSettings, service: TaskService) -> None:
    open_settings = ApiSettings(settings.service, api_token=None)
    client = TestClient(create_app(open_settings, service=service), base_url="http://10.1.2.3:8000")
    for method, path in (("GET", "/tasks"), ("GET", "/"), ("GET", "/health"), ("POST", "/tasks/x1/run")):
        response = client.request(method, path, headers=JSON)
        assert response.status_code == 403, (method, path)
        assert "TABLEBEAT_API_TOKEN" in response.json()["detail"]
    allowed = ApiSettings(settings.service, api_token=None, allow_open=True)
    opened = TestClient(create_app(allowed, service=service), base_url="http://10.1.2.3:8000")
    assert opened.get("/tasks").status_code == 200


# --- item 4: /health tells a stranger only ok/degraded --------------------------------------


def test_health_without_credentials_says_only_ok(attacked: TestClient, mode: str) -> None:
    anonymous = attacked.get("/health", headers={"Authorization": ""})
    assert anonymous.status_code == 200
    if mode == "token":
        assert anonymous.json() == {"status": "ok"}
        assert attacked.get("/health").json()["database"] == {"ok": True, "error": None}
    else:  # no token: everyone on loopback is the operator, as for every other endpoint
        assert set(anonymous.json()) == {"status", "database", "broker"}
