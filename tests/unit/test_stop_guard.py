"""scheduler/stop_guard.py: a stop signal inside a holding block waits for its end, then reaches the handler."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from scheduler.stop_guard import StopGuard


class Stopped(Exception):
    pass


@pytest.fixture
def guard() -> Iterator[StopGuard]:
    seen: list[int] = []

    def celery_like(signum: int, _frame: FrameType | None) -> None:
        seen.append(signum)
        raise Stopped(signum)  # Celery's beat raises SystemExit here

    previous = signal.signal(signal.SIGTERM, celery_like)
    made = StopGuard()
    made.install()
    try:
        yield made
    finally:
        made.uninstall()
        assert signal.getsignal(signal.SIGTERM) is celery_like  # put back
        signal.signal(signal.SIGTERM, previous)


def test_a_stop_inside_the_block_is_delivered_when_it_ends(guard: StopGuard) -> None:
    steps: list[str] = []
    with pytest.raises(Stopped):
        with guard.holding():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("pushed")
            with guard.holding():  # nested: still held
                steps.append("marked")
            steps.append("after the inner block")
    assert steps == ["pushed", "marked", "after the inner block"]


def test_outside_a_block_the_handler_runs_at_once(guard: StopGuard) -> None:
    with pytest.raises(Stopped):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
    with guard.holding():
        pass  # nothing pending: no second delivery
