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
#: Cases with a test of their own below (T4, T5 and T8 also run on PostgreSQL).
OWN_TEST = {"T4", "T5", "T8"}
#: What T4 and T5 report, the same keys on MariaDB and PostgreSQL.
T4_KEYS = {
    "first_message_s",
    "all_messages_s",
    "all_rows_s",
    "all_published_at_s",
    "rows_claimed_at_boundary",
    "missed",
    "doubled",
    "llen",
    "distinct_message_ids",
    "execute_task_rows",
    "skipped_rows",
    "beat_ready_before_boundary_s",
    "beat_cpu_s_total",
    "period_s",
    "seed_s",
}
T5_KEYS = {
    "beats",
    "runs_closed_by_stand_in",
    "fires_per_s",
    "min_fires_in_a_second",
    "p99_lateness_s",
    "p50_lateness_s",
    "max_lateness_s",
    "missed",
    "skipped",
    "expected_fires",
    "published_fires",
    "broker_burst_complete_p50_s",
    "broker_burst_complete_p99_s",
    "broker_bursts_complete",
    "beat_cpu_util",
    "beat_peak_rss_mb",
    "beat_ready_before_start_s",
    "window_s",
    "seed_s",
}


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


KINDS = [pytest.param("mariadb", marks=pytest.mark.mariadb), pytest.param("postgresql", marks=pytest.mark.postgresql)]


def run_on(kind: str, tmp_path: Path, target: str, **sizes: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Run one case on a fresh database of ``kind``; the results document, the case's metrics and
    the lines it printed (checked by :func:`assert_numbers`)."""
    lines: list[str] = []
    with fresh_database(kind) as db_url, redis_broker_db() as broker_url:
        env = BenchEnv(db_url=db_url, redis_url=broker_url, log_dir=tmp_path / "logs")
        try:
            doc = run_bench(env, select([target]), log=lines.append, **sizes)
        finally:
            env.close()
    assert_numbers(doc, lines)
    return doc, doc["results"][target]["metrics"], lines


@pytest.mark.parametrize("kind", KINDS)
def test_t4_burst_on_each_database(tmp_path: Path, kind: str) -> None:
    """T4's result queries run on both dialects and give the same keys; structure only, no timing."""
    _, metrics, _ = run_on(kind, tmp_path, "T4", rows=200, t4_period=10)
    assert set(metrics) == T4_KEYS, metrics
    counts = ("missed", "doubled", "llen", "distinct_message_ids", "execute_task_rows", "skipped_rows")
    for key in counts:
        assert isinstance(metrics[key], int) and metrics[key] >= 0, metrics
    assert metrics["distinct_message_ids"] <= metrics["llen"] and metrics["period_s"] == 10, metrics
    assert metrics["execute_task_rows"] > 0, metrics  # the boundary's fires were found in the table


@pytest.mark.parametrize(
    ("kind", "beats"),
    [pytest.param(*k.values, 1, marks=k.marks, id=k.values[0]) for k in KINDS]
    + [pytest.param("mariadb", 2, marks=pytest.mark.mariadb, id="mariadb-2-beats-closed-runs")],
)
def test_t5_sustained_on_each_database(tmp_path: Path, kind: str, beats: int) -> None:
    """T5's result query runs on both dialects and gives the same keys, with one beat or two sharing
    the fires; structure only, no timing."""
    _, metrics, _ = run_on(kind, tmp_path, "T5", rows=100, seconds=2, beats=beats, close_runs=beats > 1)
    assert set(metrics) == T5_KEYS and metrics["beats"] == beats, metrics
    assert metrics["runs_closed_by_stand_in"] is (beats > 1), metrics
    assert metrics["window_s"] == 2 and metrics["expected_fires"] == 100 * 2, metrics
    assert 0 < metrics["published_fires"] == metrics["expected_fires"] - metrics["missed"], metrics
    assert 0 <= metrics["min_fires_in_a_second"] <= 100, metrics
    # Lateness comes from the fetched datetimes (published_at - scheduled_at): seconds, ordered.
    assert metrics["p50_lateness_s"] <= metrics["p99_lateness_s"] <= metrics["max_lateness_s"], metrics


@pytest.mark.parametrize("kind", KINDS)
def test_t8_beats_share_the_work(tmp_path: Path, kind: str) -> None:
    doc, metrics, lines = run_on(kind, tmp_path, "T8", rows=200, seconds=2)
    assert metrics["duplicates"] == 0
    for count, run in ((1, metrics["one_beat"]), (3, metrics["three_beats"])):
        assert run["beats"] == count and len(run["fires_by_beat"]) == count, run  # every fire claimed by a beat
        assert 0 < run["distinct_fires"] == run["fires"] == sum(run["fires_by_beat"].values()), run
        # The window is 2 s or longer (stretched until the connections' CPU is measurable).
        assert run["seconds"] >= 2, run
        assert run["distinct_fires"] + run["missed"] == run["expected_fires"] == 200 * run["seconds"], run
        assert run["duplicate_rows"] == run["duplicate_messages"] == 0, run
        assert run["db_connections"] >= count, run  # the beats' connections were found on the server
    # Its rows: one summary line per run, and its checks in the table.
    assert sum(1 for line in lines if " beat(s): " in line) == 2, lines
    console = Console(record=True, width=200, file=io.StringIO())
    render(doc, console)
    table = console.export_text()
    for check in doc["results"]["T8"]["checks"]:
        assert check["label"] in table, table
