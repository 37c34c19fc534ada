"""Smoke run of the benchmark harness (issue 6): every case at tiny sizes produces its numbers.

No assertion on time: this only keeps ``python -m bench`` from rotting.  Real MariaDB + Redis and
real celery beat/worker processes, in a throw-away database and a Redis DB of the test's own.
"""

from __future__ import annotations

import io
import math
import operator
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench.env import BenchEnv
from bench.runner import render, run_bench
from bench.targets import TARGETS, select
from tests.conftest import fresh_database
from tests.processes import redis_broker_db

VERDICTS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
#: Cases with a test of their own below (T8 also runs on PostgreSQL).
OWN_TEST = {"T8"}


def assert_numbers(doc: dict[str, Any], lines: list[str]) -> None:
    """No case failed; every check has a number and the verdict its comparison with the target gives."""
    for target_id, entry in doc["results"].items():
        assert "error" not in entry, f"{target_id}: {entry.get('error')}\n{entry.get('traceback')}\n" + "\n".join(lines)
        for check in entry["checks"]:
            value = check["measured"]
            assert isinstance(value, (int, float)) and not math.isnan(value), f"{target_id} {check['key']}: {value!r}"
            # The verdict is the comparison of the measured number with the (size-scaled) target.
            assert check["pass"] is VERDICTS[check["op"]](value, check["target"]), f"{target_id} {check}"


@pytest.mark.mariadb
def test_every_case_produces_numbers(tmp_path: Path) -> None:
    lines: list[str] = []
    started = time.monotonic()
    with fresh_database("mariadb") as db_url, redis_broker_db() as broker_url:
        env = BenchEnv(db_url=db_url, redis_url=broker_url, log_dir=tmp_path / "logs")
        try:
            doc = run_bench(
                env,
                [t for t in TARGETS.values() if t.id not in OWN_TEST],
                rows=200,
                seconds=2,
                reps=3,
                t4_period=10,
                log=lines.append,
            )
        finally:
            env.close()
    print(f"bench smoke run took {time.monotonic() - started:.1f}s")
    render(doc)  # the table renders from the document
    assert set(doc["results"]) == set(TARGETS) - OWN_TEST
    assert doc["machine"]["cores"]
    assert_numbers(doc, lines)


@pytest.mark.parametrize(
    "kind",
    [pytest.param("mariadb", marks=pytest.mark.mariadb), pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def test_t8_beats_share_the_work(tmp_path: Path, kind: str) -> None:
    lines: list[str] = []
    with fresh_database(kind) as db_url, redis_broker_db() as broker_url:
        env = BenchEnv(db_url=db_url, redis_url=broker_url, log_dir=tmp_path / "logs")
        try:
            doc = run_bench(env, select(["T8"]), rows=50, seconds=2, log=lines.append)
        finally:
            env.close()
    assert_numbers(doc, lines)
    metrics = doc["results"]["T8"]["metrics"]
    assert metrics["duplicates"] == 0
    for count, run in ((1, metrics["one_beat"]), (3, metrics["three_beats"])):
        assert run["beats"] == count and len(run["fires_by_beat"]) == count, run  # every fire claimed by a beat
        assert 0 < run["distinct_fires"] == run["fires"] == sum(run["fires_by_beat"].values()), run
        assert run["distinct_fires"] + run["missed"] == run["expected_fires"] == 50 * 2, run
        assert run["duplicate_rows"] == run["duplicate_messages"] == 0, run
        assert run["db_connections"] >= count, run  # the beats' connections were found on the server
    # Its rows: one summary line per run, and its checks in the table.
    assert sum(1 for line in lines if " beat(s): " in line) == 2, lines
    console = Console(record=True, width=200, file=io.StringIO())
    render(doc, console)
    table = console.export_text()
    for check in doc["results"]["T8"]["checks"]:
        assert check["label"] in table, table
