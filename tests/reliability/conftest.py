"""Fault-injection fixtures: real ``celery beat``/``worker`` processes on MariaDB + Redis.

Shared services (the suite's MariaDB and Redis) are used for every test that only kills
celery processes. Tests that stop a *service* get their own private ``mariadbd`` / ``redis-server``
(:mod:`tests.reliability.services`), so an outage never disturbs another test or session using
the shared ones, and the shared servers are never stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from models import make_engine
from tests.conftest import migrated_database
from tests.processes import Cluster, redis_broker_db
from tests.reliability.helpers import reliability_env

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder starts real processes on MariaDB (a ``pytestmark`` here would do nothing)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.mariadb)


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, migrated MariaDB database per test."""
    with migrated_database("mariadb") as url:
        yield url


@pytest.fixture
def broker_url() -> Iterator[str]:
    with redis_broker_db() as url:
        yield url


@pytest.fixture
def db(mariadb_url: str) -> Iterator[Engine]:
    engine = make_engine(mariadb_url)
    yield engine
    engine.dispose()


@pytest.fixture
def cluster(mariadb_url: str, broker_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """An empty cluster (the test starts what it needs); every process is stopped afterwards."""
    running = Cluster(reliability_env(mariadb_url, broker_url), tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
        print(f"cluster logs in {tmp_path}")


from tests.ops.conftest import WebhookReceiver, webhook  # noqa: E402,F401  (a real local webhook receiver)
