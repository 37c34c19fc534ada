"""Smoke run of the benchmark harness (issue 6): every case at tiny sizes produces its numbers.

No assertion on time: this only keeps ``python -m bench`` from rotting.  Real MariaDB + Redis and
real celery beat/worker processes, in a throw-away database and a Redis DB of the test's own.
"""

from __future__ import annotations

import math
import operator
import time
from pathlib import Path

import pytest

from bench.env import BenchEnv
from bench.runner import render, run_bench
from bench.targets import TARGETS
from tests.conftest import fresh_database
from tests.processes import redis_broker_db

VERDICTS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}

pytestmark = [pytest.mark.integration, pytest.mark.mariadb, pytest.mark.timeout(240)]


def test_every_case_produces_numbers(tmp_path: Path) -> None:
    lines: list[str] = []
    started = time.monotonic()
    with fresh_database("mariadb") as db_url, redis_broker_db() as broker_url:
        env = BenchEnv(db_url=db_url, redis_url=broker_url, log_dir=tmp_path / "logs")
        try:
            doc = run_bench(
                env,
                list(TARGETS.values()),
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
    assert set(doc["results"]) == set(TARGETS)
    assert doc["machine"]["cores"]
    for target_id, entry in doc["results"].items():
        assert "error" not in entry, f"{target_id}: {entry.get('error')}\n{entry.get('traceback')}\n" + "\n".join(lines)
        for check in entry["checks"]:
            value = check["measured"]
            assert isinstance(value, (int, float)) and not math.isnan(value), f"{target_id} {check['key']}: {value!r}"
            # The verdict is the comparison of the measured number with the (size-scaled) target.
            assert check["pass"] is VERDICTS[check["op"]](value, check["target"]), f"{target_id} {check}"
