"""Bearer-token auth, ``/health`` and the OpenAPI docs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import api.app as api_app
from api.app import create_app
from api.settings import ApiSettings
from conf.settings import Settings
from service.tasks import TaskService
from tests.api.conftest import TOKEN
from tests.api.ops_env import clear_tables

pytestmark = pytest.mark.mariadb

ENDPOINTS = [
    ("GET", "/tasks"),
    ("POST", "/tasks"),
    ("GET", "/tasks/1"),
    ("PUT", "/tasks/1"),
    ("PATCH", "/tasks/1"),
    ("DELETE", "/tasks/1"),
    ("POST", "/tasks/1/pause"),
    ("POST", "/tasks/1/resume"),
    ("POST", "/tasks/1/run"),
    ("GET", "/tasks/1/logs"),
]


@pytest.fixture
def anonymous(settings: ApiSettings, service: TaskService) -> TestClient:
    """A client sending no Authorization header (lifespan not run: the shared service stays open),
    with no failed sign-ins on record."""
    clear_tables(service.engine)
    return TestClient(create_app(settings, service=service))


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_but_health_needs_the_bearer_token(anonymous: TestClient, method: str, path: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ):
        response = anonymous.request(method, path, headers=headers, json={})  # json: writes need its content type
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "bearer token" in response.json()["detail"]
    allowed = anonymous.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"}, json={})
    assert allowed.status_code != 401


def test_wrong_bearer_tokens_are_limited_per_client(
    anonymous: TestClient, settings: ApiSettings, service: TaskService, caplog: pytest.LogCaptureFixture
) -> None:
    guesses = [f"guess-{n}" for n in range(settings.login_failures_per_minute)]
    with caplog.at_level(logging.WARNING, logger="tablebeat.api"):
        for guess in guesses:
            assert anonymous.get("/tasks", headers={"Authorization": f"Bearer {guess}"}).status_code == 401
        # Past the limit even the right token gets 429: guessing through the API is no faster than the form.
        limited = anonymous.get("/tasks", headers={"Authorization": f"Bearer {TOKEN}"})
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 61
    assert anonymous.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429  # the console too
    assert caplog.text.count("wrong bearer token from testclient") == len(guesses)
    assert not any(guess in caplog.text for guess in guesses) and TOKEN not in caplog.text
    other = TestClient(create_app(settings, service=service), client=("10.0.0.8", 4000))
    assert other.get("/tasks", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # A missing header is no guess and is not counted.
    clear_tables(service.engine)
    for _ in range(settings.login_failures_per_minute + 2):
        assert anonymous.get("/tasks").status_code == 401


def test_health_needs_no_token_and_reports_database_and_broker(anonymous: TestClient) -> None:
    response = anonymous.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    detailed = anonymous.get("/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert detailed.status_code == 200
    assert detailed.json() == {
        "status": "ok",
        "database": {"ok": True, "error": None},
        "broker": {"ok": True, "error": None},
    }


def test_health_reports_unreachable_database_and_broker() -> None:
    settings = Settings(
        database_url="mysql+pymysql://root@127.0.0.1:1/nowhere?connect_timeout=2", broker_url="redis://127.0.0.1:1/0"
    )
    service = TaskService(settings, registered=frozenset())
    try:
        client = TestClient(create_app(ApiSettings(settings, api_token=TOKEN), service=service))
        anonymous = client.get("/health")
        response = client.get("/health", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        service.close()
    # Without credentials: only the verdict, no host, port or driver error.
    assert anonymous.status_code == 503 and anonymous.json() == {"status": "degraded"}
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "degraded"
    assert report["database"]["ok"] is False and "OperationalError" in report["database"]["error"]
    assert report["broker"]["ok"] is False and report["broker"]["error"]


def test_without_a_token_requests_pass_and_start_up_warns(
    settings: ApiSettings, service: TaskService, caplog: pytest.LogCaptureFixture
) -> None:
    open_settings = ApiSettings(settings.service, api_token=None)
    with caplog.at_level(logging.WARNING, logger="tablebeat.api"):
        with TestClient(create_app(open_settings, service=TaskService(settings.service))) as client:
            assert client.get("/tasks").status_code == 200
    assert "TABLEBEAT_API_TOKEN is not set" in caplog.text and "127.0.0.1" in caplog.text


def test_openapi_docs(anonymous: TestClient) -> None:
    assert anonymous.get("/docs").status_code == 200 and "swagger" in anonymous.get("/docs").text.lower()
    schema = anonymous.get("/openapi.json").json()
    assert {
        "/health",
        "/tasks",
        "/tasks/{ref}",
        "/tasks/{ref}/pause",
        "/tasks/{ref}/resume",
        "/tasks/{ref}/run",
        "/tasks/{ref}/logs",
    } <= set(schema["paths"])
    assert set(schema["paths"]["/tasks/{ref}"]) == {"get", "put", "patch", "delete"}
    assert "trigger_args" in schema["components"]["schemas"]["TaskCreate"]["properties"]


@pytest.fixture
def default_app_reset() -> Iterator[None]:
    api_app._default_app = None
    yield
    if api_app._default_app is not None:
        api_app._default_app.state.service.close()
    api_app._default_app = None


def test_module_level_app_for_uvicorn_reads_the_environment(
    default_app_reset: None, db_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABLEBEAT_DATABASE_URL", db_url)
    monkeypatch.setenv("TABLEBEAT_BROKER_URL", broker_url)
    monkeypatch.setenv("TABLEBEAT_API_TOKEN", "from-env")
    client = TestClient(api_app.app)  # what ``uvicorn api.app:app`` loads
    assert client.get("/tasks").status_code == 401
    assert client.get("/tasks", headers={"Authorization": "Bearer from-env"}).status_code == 200
    assert client.get("/health").json()["status"] == "ok"
