"""Issue 4 item 7: a table of hostile rows against a real beat on MariaDB.

Each row goes to ``status = 'error'`` with a ``last_error`` naming the column, nothing is imported
or evaluated, and the beat keeps firing the good row. Values MariaDB itself refuses (longer than
the column) are rejected by the INSERT with an error naming the column. The parsers are fuzzed
with hypothesis in ``tests/unit/test_specs.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, OperationalError

from tests.helpers import insert_task, sql
from tests.processes import Cluster, wait_for
from tests.reliability.helpers import runs

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]

GOOD = {
    "execute_func": "test_interval",
    "trigger": "interval",
    "spec": "1",
    "args": "",
    "kwargs": "{}",
    "timezone": None,
}


def hostile(marker: Path) -> list[tuple[str, dict[str, object], str]]:
    """(id, the row's bad columns, the column its last_error must name)."""
    shell = f"__import__('os').system('touch {marker}')"
    return [
        ("cron-minute-61", {"trigger": "cron", "spec": "61 * * * *"}, "spec"),
        ("cron-3-fields", {"trigger": "cron", "spec": "* * *"}, "spec"),
        ("cron-words", {"trigger": "cron", "spec": "every tuesday"}, "spec"),
        ("interval-0", {"spec": "0"}, "spec"),
        ("interval-negative", {"spec": "-5"}, "spec"),
        ("interval-abc", {"spec": "abc"}, "spec"),
        ("interval-1e309", {"spec": "1e309"}, "spec"),
        ("date-feb-30", {"trigger": "date", "spec": "2023-02-30 10:00:00"}, "spec"),
        ("date-ambiguous", {"trigger": "date", "spec": "2030-11-03 01:30:00", "timezone": "America/New_York"}, "spec"),
        (
            "date-nonexistent",
            {"trigger": "date", "spec": "2030-03-10 02:30:00", "timezone": "America/New_York"},
            "spec",
        ),
        ("unknown-trigger", {"trigger": "weekly"}, "trigger"),
        ("unknown-timezone", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ("path-timezone", {"timezone": "../../etc/passwd"}, "timezone"),
        ("func-os-system", {"execute_func": "os.system"}, "execute_func"),
        ("func-eval", {"execute_func": "builtins.eval"}, "execute_func"),
        ("func-path", {"execute_func": "../x"}, "execute_func"),
        ("func-canary-module", {"execute_func": "tests.reliability.canary.boom"}, "execute_func"),
        ("func-255-chars", {"execute_func": "f" * 255}, "execute_func"),
        ("args-code", {"args": shell}, "args"),
        ("args-trailing-comma", {"args": "1,"}, "args"),
        ("args-unclosed-quote", {"args": '"abc, 1'}, "args"),
        ("args-60kb", {"args": "x" * 60_000}, "args"),
        ("kwargs-array", {"kwargs": "[1, 2]"}, "kwargs"),
        ("kwargs-code", {"kwargs": shell}, "kwargs"),
        ("kwargs-not-json", {"kwargs": "{a: 1}"}, "kwargs"),
        # datetime arithmetic around year 1 overflows: once this crashed beat (OverflowError)
        (
            "start-date-year-1",
            {"trigger": "cron", "spec": "* * * * *", "start_date": "0001-01-01 00:00:00"},
            "start_date",
        ),
        ("interval-start-year-1", {"start_date": "0001-01-01 00:00:00"}, "start_date"),
        ("jitter-negative", {"trigger": "cron", "spec": "* * * * *", "jitter_seconds": -1}, "jitter_seconds"),
    ]


def insert_row(db: Engine, key: str, cols: dict[str, object]) -> int:
    row = {**GOOD, **cols}
    return insert_task(
        db,
        key,
        str(row["execute_func"]),
        str(row["trigger"]),
        str(row["spec"]),
        str(row["args"]),
        kwargs=row["kwargs"],
        timezone=row["timezone"],
        **{column: value for column, value in row.items() if column not in GOOD},
    )


def test_hostile_rows_are_errors_and_the_good_row_keeps_firing(cluster: Cluster, db: Engine, tmp_path: Path) -> None:
    marker = tmp_path / "evaluated"
    canary = tmp_path / "canary-imported"
    cluster.env["TABLEBEAT_CANARY_FILE"] = str(canary)
    cluster.start_worker(concurrency=1)
    cluster.start_beat()
    cluster.wait_ready()
    good = insert_row(db, "good", {})
    wait_for(lambda: runs(db, good, "success"), 20, what="the good row to fire")

    cases = hostile(marker)
    ids = {name: insert_row(db, f"hostile-{name}", cols) for name, cols, _ in cases}
    # Too long for the column: MariaDB (strict mode) refuses the row itself, naming the column.
    for column, value in (("execute_func", "f" * 10_000), ("args", "1" * 1_000_000)):
        with pytest.raises((DataError, OperationalError), match=f"Data too long for column '{column}'"):
            insert_row(db, f"too-long-{column}", {column: value})

    def statuses() -> dict[str, tuple[str, str | None]]:
        rows = sql(db, "SELECT task_key, status, last_error FROM task WHERE task_key LIKE 'hostile-%'")
        return {k.removeprefix("hostile-"): (s, e) for k, s, e in rows}

    wait_for(lambda: all(s == "error" for s, _ in statuses().values()), 15, what="every hostile row in error")
    fired_before = len(runs(db, good))
    # Three more fires of the good row: the beat kept going while the hostile rows stayed parked.
    wait_for(lambda: len(runs(db, good)) >= fired_before + 3, 60, what="three more fires of the good row")
    got = statuses()
    for name, _cols, column in cases:
        status, error = got[name]
        assert status == "error" and error and error.startswith(f"{column}:"), (name, status, error)
        assert len(error) < 600, (name, len(error))  # the error quotes the value shortened
        assert not runs(db, ids[name]), name
    assert not marker.exists() and not canary.exists()  # nothing was evaluated or imported
    assert all(p.proc.poll() is None for p in cluster.processes)
