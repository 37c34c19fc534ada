"""Issue 10, item 3: console sessions are revoked server-side, expire, hold across API
processes, and sign-in attempts are rate-limited per client and logged without the token."""

from __future__ import annotations

import hashlib
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from api.app import create_app
from api.settings import ApiSettings
from models import ConsoleSession, LoginFailure
from service.tasks import TaskService
from tests.console.conftest import BASE_URL, TOKEN, csrf_of

pytestmark = pytest.mark.mariadb


def sign_in(client: TestClient, token: str = TOKEN) -> int:
    page = client.get("/login")
    return client.post("/login", data={"token": token, "next": "/", "csrf_token": csrf_of(page.text)}).status_code


def sign_out(client: TestClient) -> int:
    return client.post("/logout", data={"csrf_token": csrf_of(client.get("/").text)}).status_code


def test_old_cookie_is_dead_after_logout(browser: TestClient) -> None:
    cookie = browser.cookies["tb_session"]
    assert browser.get("/").status_code == 200
    assert sign_out(browser) == 303
    # The replay: the old cookie sent again after POST /logout (was 200 for 12 h).
    browser.cookies.set("tb_session", cookie)
    assert browser.get("/").status_code == 303


def test_session_expires(browser: TestClient, engine: Engine) -> None:
    assert browser.get("/").status_code == 200
    with engine.begin() as conn:
        conn.execute(update(ConsoleSession).values(expires_at=ConsoleSession.created_at))
    assert browser.get("/").status_code == 303


def test_session_lifetime_setting(settings: ApiSettings, service: TaskService, engine: Engine) -> None:
    short = ApiSettings(settings.service, api_token=TOKEN, session_seconds=600)
    with TestClient(create_app(short, service=service), base_url=BASE_URL, follow_redirects=False) as client:
        assert sign_in(client) == 303
    with engine.connect() as conn:
        row = conn.execute(select(ConsoleSession.created_at, ConsoleSession.expires_at)).one()
    assert (row.expires_at - row.created_at).total_seconds() == 600


def test_database_holds_a_hash_not_the_cookie(browser: TestClient, engine: Engine) -> None:
    cookie = browser.cookies["tb_session"]
    with engine.connect() as conn:
        stored = conn.execute(select(ConsoleSession.id_hash)).scalars().all()
    assert stored == [hashlib.sha256(cookie.encode()).hexdigest()]


def test_sessions_are_shared_by_several_api_processes(settings: ApiSettings, engine: Engine) -> None:
    # Two apps with their own engines, as two processes behind one proxy would be.
    services = [TaskService(settings.service) for _ in range(2)]
    try:
        one, two = (
            TestClient(create_app(settings, service=s), base_url=BASE_URL, follow_redirects=False) for s in services
        )
        assert sign_in(one) == 303
        cookie = one.cookies["tb_session"]
        two.cookies.set("tb_session", cookie)
        two.cookies.set("tb_csrf", one.cookies["tb_csrf"])
        assert two.get("/").status_code == 200
        assert sign_out(two) == 303
        assert one.get("/").status_code == 303
    finally:
        for service in services:
            service.close()


def test_new_token_ends_old_sessions(settings: ApiSettings, service: TaskService, browser: TestClient) -> None:
    cookie = browser.cookies["tb_session"]
    rotated = ApiSettings(settings.service, api_token="a-new-token")
    client = TestClient(create_app(rotated, service=service), base_url=BASE_URL, follow_redirects=False)
    client.cookies.set("tb_session", cookie)
    assert client.get("/").status_code == 303


def test_failed_sign_ins_are_limited_per_client(
    anonymous: TestClient, settings: ApiSettings, service: TaskService, caplog: pytest.LogCaptureFixture
) -> None:
    guesses = [f"guess-{n}" for n in range(settings.login_failures_per_minute)]
    with caplog.at_level(logging.INFO, logger="tablebeat.api"):
        assert [sign_in(anonymous, guess) for guess in guesses] == [401] * len(guesses)
        page = anonymous.get("/login")
        limited = anonymous.post("/login", data={"token": TOKEN, "next": "/", "csrf_token": csrf_of(page.text)})
    # Past the limit even the right token is not looked at.
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 61
    assert "too many failed sign-ins" in limited.text
    assert "tb_session" not in limited.cookies
    failed = [r.getMessage() for r in caplog.records if "sign-in failed from testclient" in r.getMessage()]
    assert len(failed) == len(guesses) and any("refused" in r.getMessage() for r in caplog.records)
    assert not any(guess in caplog.text for guess in guesses) and TOKEN not in caplog.text
    # Another client is not held back.
    other = TestClient(create_app(settings, service=service), base_url=BASE_URL, client=("10.0.0.7", 5000))
    other.follow_redirects = False
    assert sign_in(other) == 303


def test_success_forgets_earlier_failures(anonymous: TestClient, engine: Engine) -> None:
    assert sign_in(anonymous, "typo") == 401
    assert sign_in(anonymous) == 303
    with engine.connect() as conn:
        assert conn.execute(select(LoginFailure)).all() == []
