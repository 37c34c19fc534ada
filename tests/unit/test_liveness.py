"""Beat liveness (scheduler/liveness.py): stamps every interval only while claims are held, a stall
only counts when claims were held through it, and the thread sleeps while none are."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine

from scheduler import liveness
from scheduler.liveness import Heartbeat


@pytest.fixture
def heartbeat() -> Iterator[Heartbeat]:
    engine = create_engine("sqlite://")  # no beat_node table: stop()'s mark fails and is only logged
    beat = Heartbeat(engine, "me", every=0.1, dead_seconds=0.3)
    yield beat
    beat._stop.set()
    beat._holding.set()
    engine.dispose()


def test_a_beat_holding_no_claims_stamps_rarely(heartbeat: Heartbeat) -> None:
    assert heartbeat.due()  # never stamped
    heartbeat.stamped()
    time.sleep(0.12)
    assert not heartbeat.due()  # holding none: every IDLE_STAMP_S
    heartbeat.hold(True)
    assert heartbeat.holding and heartbeat.due()
    heartbeat.stamped()
    assert not heartbeat.due()
    time.sleep(0.08)  # three quarters of the interval: the poll half an interval later would be late
    assert heartbeat.due()


def test_idle_stamp_interval(heartbeat: Heartbeat, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveness, "IDLE_STAMP_S", 0.05)
    heartbeat.stamped()
    time.sleep(0.06)
    assert heartbeat.due()


def test_a_gap_is_a_stall_only_while_claims_were_held(heartbeat: Heartbeat) -> None:
    heartbeat.stamped()
    time.sleep(0.2)  # longer than half the dead time, holding nothing
    assert not heartbeat.take_stall()
    heartbeat.stamped()  # the claim's own stamp after an idle gap: not a stall
    assert not heartbeat.take_stall()
    heartbeat.hold(True)
    time.sleep(0.2)
    assert heartbeat.take_stall()  # holding and silent for too long
    heartbeat.stamped()
    assert heartbeat.take_stall()  # the gap is remembered once
    assert not heartbeat.take_stall()


def test_the_thread_sleeps_until_claims_are_held(heartbeat: Heartbeat, monkeypatch: pytest.MonkeyPatch) -> None:
    stamps: list[float] = []

    def stamp() -> bool:
        stamps.append(time.monotonic())
        heartbeat.stamped()
        return True

    monkeypatch.setattr(heartbeat, "stamp", stamp)
    heartbeat.start()
    time.sleep(0.5)
    assert len(stamps) == 1  # start's own stamp only
    heartbeat.hold(True)
    time.sleep(0.5)
    assert len(stamps) >= 3  # about every 1.33 intervals: the loop stamps nothing here
    heartbeat.hold(False)
    time.sleep(0.2)
    count = len(stamps)
    time.sleep(0.4)
    assert len(stamps) == count
    heartbeat.stop()
    assert heartbeat._thread is not None and not heartbeat._thread.is_alive()


def test_stamping_at_every_poll_is_no_stall_with_the_default_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beat's defaults (polls every 0.5 s, ``every`` = 2 polls, 1.5 s dead): a beat holding claims and
    polling on time is never taken for stalled. Stamping only every second made every gap one (a beat
    firing 30 tasks a second re-checked its claims before most of its publishes)."""
    clock = [1000.0]
    monkeypatch.setattr(liveness.time, "monotonic", lambda: clock[0])
    engine = create_engine("sqlite://")
    beat = Heartbeat(engine, "me", every=1.0, dead_seconds=1.5)
    try:
        beat.hold(True)
        beat.stamped()
        stamps = 0
        for _ in range(6):  # the scheduler loop: one change-log poll every 0.5 s
            clock[0] += 0.5
            if beat.due():
                beat.stamped()
                stamps += 1
        assert stamps == 6
        assert not beat.take_stall()
        clock[0] += beat.every * 1.1  # the loop is late: the thread stamps now, still no stall
        beat.stamped()
        assert not beat.take_stall()
        clock[0] += 0.8  # a real gap of more than half the dead time is one
        beat.stamped()
        assert beat.take_stall()
    finally:
        engine.dispose()
