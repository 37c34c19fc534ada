"""Fixtures of the observability tests: real beat/worker/API processes on MariaDB + Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from models import make_engine
from tests.conftest import migrated_database
from tests.processes import Cluster, redis_broker_db
from tests.reliability.helpers import reliability_env


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
def env(mariadb_url: str, broker_url: str) -> dict[str, str]:
    return reliability_env(mariadb_url, broker_url)


@pytest.fixture
def cluster(env: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    """An empty cluster; the test sets ``cluster.env`` per process and starts what it needs."""
    running = Cluster(dict(env), tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
        print(f"cluster logs in {tmp_path}")
