"""Issue 4 item 8, short: about a minute of kill -9 / restart of random beats and workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import run

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def test_chaos_one_minute(tmp_path: Path) -> None:
    report = run(minutes=1.0, tasks=60, kill_every=(10.0, 20.0), log_dir=tmp_path)
    assert report.expected > 300 and sum(report.kills.values()) >= 3
    assert report.doubled == 0 and report.executed_twice == 0, report.examples
    assert report.missing == 0 and report.unexpected == 0 and report.early == 0, report.examples
    assert report.stuck == 0, report.examples
