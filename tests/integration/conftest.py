"""A real cluster: MariaDB + Redis, ``celery beat`` and ``celery worker`` processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import cluster_env
from tests.processes import Cluster

#: Short refresh so "within one refresh" tests stay quick.
REFRESH_SECONDS = 3
#: The most a wait may take on a busy machine; a wait returns as soon as its condition holds.
PATIENCE_S = 60


@pytest.fixture(scope="module")
def cluster(mariadb_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One beat and one worker for the whole module."""
    log_dir = tmp_path_factory.mktemp("cluster")
    running = Cluster(cluster_env(mariadb_url, broker_url, refresh_seconds=REFRESH_SECONDS), log_dir)
    try:
        running.start_worker()
        running.start_beat()
        running.wait_ready()
        yield running
    finally:
        running.stop_all()
        print(f"cluster logs in {log_dir}")
