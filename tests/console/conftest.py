"""Fixtures of the console tests: the app on MariaDB + Redis behind FastAPI's TestClient.

The client talks HTTPS (``https://testserver``): the console's cookies are ``Secure``,
and a client honouring that keeps them only over HTTPS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.settings import ApiSettings
from conf.settings import Settings
from service.tasks import TaskService
from tests.api.ops_env import clear_tables

TOKEN = "console-s3cret"
BASE_URL = "https://testserver"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token the page's forms carry."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@pytest.fixture(scope="module")
def db_url(mariadb_url: str) -> str:
    return mariadb_url


@pytest.fixture(scope="module")
def service(db_url: str, broker_url: str) -> Iterator[TaskService]:
    running = TaskService(Settings(database_url=db_url, broker_url=broker_url))
    yield running
    running.close()


@pytest.fixture(scope="module")
def settings(service: TaskService) -> ApiSettings:
    return ApiSettings(service.settings, api_token=TOKEN)


@pytest.fixture
def engine(service: TaskService) -> Engine:
    clear_tables(service.engine)
    return service.engine


@pytest.fixture
def anonymous(settings: ApiSettings, service: TaskService, engine: Engine) -> Iterator[TestClient]:
    """A browser that has not signed in (the console requires the token), on empty tables."""
    with TestClient(create_app(settings, service=service), base_url=BASE_URL, follow_redirects=False) as client:
        yield client


@pytest.fixture
def browser(anonymous: TestClient) -> TestClient:
    """A browser signed in through the login form."""
    page = anonymous.get("/login")
    response = anonymous.post("/login", data={"token": TOKEN, "next": "/", "csrf_token": csrf_of(page.text)})
    assert response.status_code == 303, response.text
    return anonymous
