"""Celery's sub-second "beat: Waking up now." debug line passes once a minute; every other line passes."""

from __future__ import annotations

import logging

import pytest

from scheduler import tick_log


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("celery.beat", logging.DEBUG, __file__, 1, msg, args, None)


def test_the_first_waking_up_now_passes_then_one_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(tick_log.time, "monotonic", lambda: clock[0])
    keep = tick_log.WakingUpOncePerMinute()
    passed = []
    for _ in range(240):  # two minutes of ticks every 0.5 s
        passed.append(keep.filter(_record(tick_log.WAKING_UP, "now")))
        clock[0] += 0.5
    assert passed.count(True) == 2 and passed[0] and passed[120]


def test_longer_sleeps_and_other_lines_always_pass() -> None:
    keep = tick_log.WakingUpOncePerMinute()
    assert keep.filter(_record(tick_log.WAKING_UP, "now"))
    assert keep.filter(_record(tick_log.WAKING_UP, "in 5.00 seconds"))
    assert keep.filter(_record("beat: Ticking with max interval->%s", "5.00 seconds"))
    assert not keep.filter(_record(tick_log.WAKING_UP, "now"))


def test_install_adds_the_filter_once() -> None:
    logger = logging.getLogger("celery.beat")
    tick_log.install()
    tick_log.install()
    assert sum(isinstance(f, tick_log.WakingUpOncePerMinute) for f in logger.filters) == 1
