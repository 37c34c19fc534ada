"""A real cluster: MariaDB + Redis, ``celery beat`` and ``celery worker`` processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.processes import Cluster

#: Short refresh so "within one refresh" tests stay quick.
REFRESH_SECONDS = 3
#: The most a wait may take on a busy machine; a wait returns as soon as its condition holds.
PATIENCE_S = 60


def cluster_env(db_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """Environment for celery processes of a test cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_")}
    env.update(
        TABLEBEAT_DATABASE_URL=db_url,
        TABLEBEAT_BROKER_URL=broker_url,
        TABLEBEAT_REFRESH_SECONDS=str(REFRESH_SECONDS),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def cluster(mariadb_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One beat and one worker for the whole module."""
    log_dir = tmp_path_factory.mktemp("cluster")
    running = Cluster(cluster_env(mariadb_url, broker_url), log_dir)
    try:
        running.start_worker()
        running.start_beat()
        running.wait_ready()
        yield running
    finally:
        running.stop_all()
        print(f"cluster logs in {log_dir}")


def sql(engine: Engine, statement: str, **params: object) -> list[tuple]:
    """Run one plain SQL statement, as an operator would, and return its rows."""
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return [tuple(r) for r in result] if result.returns_rows else []
