"""Run-lifecycle tests: real ``celery beat``/``worker`` processes on a database of each kind + Redis."""

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
def broker_url() -> Iterator[str]:
    with redis_broker_db() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database per test."""
    with migrated_database("postgresql") as url:
        yield url


@pytest.fixture
def maria_url() -> Iterator[str]:
    """A fresh, migrated MariaDB database per test."""
    with migrated_database("mariadb") as url:
        yield url


@pytest.fixture
def make_cluster(broker_url: str, tmp_path: Path) -> Iterator[object]:
    """``make_cluster(db_url, **env)`` -> an empty :class:`Cluster` on that database; all stopped afterwards."""
    made: list[Cluster] = []

    def make(db_url: str, **extra: str) -> Cluster:
        cluster = Cluster(reliability_env(db_url, broker_url, **extra), tmp_path)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop_all()
        print(f"cluster logs in {tmp_path}")


@pytest.fixture
def engine_for() -> Iterator[object]:
    """``engine_for(url)`` -> an engine disposed after the test."""
    engines: list[Engine] = []

    def make(url: str) -> Engine:
        engine = make_engine(url)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


from tests.ops.conftest import webhook  # noqa: E402,F401  (a real local webhook receiver)
