"""A real cluster whose job modules are the earlier systems' own (``tests/legacy/jobs``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import cluster_env
from tests.processes import Cluster

JOBS_DIR = Path(__file__).resolve().parent / "jobs"
REPO = Path(__file__).resolve().parents[2]
#: What a team switching from 003/004 lists: its own modules, named by path in its rows.
LEGACY_JOB_MODULES = ",".join(
    [
        "workers.examples",
        "knowledge_api.framework.task_manage.example_tasks",
        "scheduler.module.sync_tasks",
    ]
)


def legacy_env(db_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """Environment of a process that loads the legacy job modules."""
    env = cluster_env(db_url, broker_url, TABLEBEAT_JOB_MODULES=LEGACY_JOB_MODULES, **extra)
    env["PYTHONPATH"] = f"{REPO}:{JOBS_DIR}"
    return env


@pytest.fixture(scope="module")
def legacy_cluster(mariadb_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One beat and one worker loading the legacy job modules."""
    log_dir = tmp_path_factory.mktemp("legacy-cluster")
    running = Cluster(legacy_env(mariadb_url, broker_url), log_dir)
    try:
        running.start_worker()
        running.start_beat()
        yield running
    finally:
        running.stop_all()
        print(f"cluster logs in {log_dir}")
