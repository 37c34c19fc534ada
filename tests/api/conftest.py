"""Fixtures of the REST API tests: the app on MariaDB + Redis, driven by FastAPI's TestClient."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.settings import ApiSettings
from conf.settings import Settings
from service.tasks import TaskService
from tests.api.ops_env import clear_tables

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def db_url(mariadb_url: str) -> str:
    return mariadb_url


@pytest.fixture(scope="module")
def settings(db_url: str, broker_url: str) -> ApiSettings:
    return ApiSettings(Settings(database_url=db_url, broker_url=broker_url), api_token=TOKEN)


@pytest.fixture(scope="module")
def service(settings: ApiSettings) -> Iterator[TaskService]:
    running = TaskService(settings.service)
    yield running
    running.close()


@pytest.fixture(scope="module")
def app_client(settings: ApiSettings, service: TaskService) -> Iterator[TestClient]:
    with TestClient(create_app(settings, service=service)) as client:
        yield client


@pytest.fixture
def client(app_client: TestClient, service: TaskService) -> TestClient:
    """The API client with the bearer token and a JSON content type (as writes need), on empty tables."""
    clear_tables(service.engine)
    app_client.headers.update({**AUTH, "Content-Type": "application/json"})
    return app_client


@pytest.fixture
def engine(service: TaskService) -> Engine:
    return service.engine
