"""Smoke run of ``python -m bench compare`` (issue 14 item 4): every peer at a tiny N prints its row.

No assertion on time: this only keeps the comparison from rotting.  Real MariaDB + Redis and
real ``celery beat`` processes of each scheduler, in a throw-away database and Redis DB.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from bench.compare.peers import DEFAULT_PEERS, PEERS
from bench.compare.run import compare, render
from bench.env import BenchEnv
from tests.conftest import fresh_database
from tests.processes import redis_broker_db

pytestmark = [pytest.mark.integration, pytest.mark.mariadb, pytest.mark.timeout(120)]


def test_compare_prints_a_row_per_scheduler(tmp_path: Path) -> None:
    peers = [name for name in DEFAULT_PEERS if name == "tablebeat" or PEERS[name]().installed()]
    with fresh_database("mariadb") as db_url, redis_broker_db() as broker_url:
        env = BenchEnv(db_url=db_url, redis_url=broker_url, log_dir=tmp_path / "logs")
        try:
            results = compare(
                env,
                100,
                peers,
                idle_s=0.5,
                edits=0,
                log=lambda _line: None,
                burst=10,
                warmup_s=0.2,
                start_budget_s=10.0,
            )
        finally:
            env.close()
    out = io.StringIO()
    render(results, Console(file=out, width=250))
    table = out.getvalue()
    for result in results:  # a peer too slow to start on a loaded machine still gets its row, with the reason
        assert result["peer"] in table
    assert results[0]["peer"].startswith("tablebeat") and results[0].get("start_s") is not None, results[0]
    assert "tablebeat ÷ best peer" in table
    print(table)
