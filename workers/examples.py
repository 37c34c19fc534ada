"""Example jobs used by the demo and the tests."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from workers.registry import job

logger = logging.getLogger("tablebeat.examples")


def _describe(task_key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return f"{task_key} args={args!r} trace={kwargs.get('__unique_trace_id__')}"


@job
def test_interval(task_key: str, *args: Any, **kwargs: Any) -> str:
    """Logs its task_key, args and trace ID; scheduled on an interval in the demo."""
    logger.info("test_interval ran: %s", _describe(task_key, args, kwargs))
    return f"interval ok {list(args)}"


@job
def test_date(task_key: str, *args: Any, **kwargs: Any) -> str:
    """A one-shot job."""
    logger.info("test_date ran: %s", _describe(task_key, args, kwargs))
    return "date ok"


@job
def test_cron(task_key: str, *args: Any, **kwargs: Any) -> str:
    """A cron job."""
    logger.info("test_cron ran: %s", _describe(task_key, args, kwargs))
    return "cron ok"


@job
async def test_async(task_key: str, *args: Any, **kwargs: Any) -> str:
    """An ``async def`` job: run to completion in the worker."""
    await asyncio.sleep(0)
    logger.info("test_async ran: %s", _describe(task_key, args, kwargs))
    return "async ok"


@job
def always_fails(task_key: str, *args: Any, **kwargs: Any) -> None:
    """Always raises, so the demo shows a failed run with its traceback."""
    logger.info("always_fails ran: %s", _describe(task_key, args, kwargs))
    raise RuntimeError(f"{task_key} failed on purpose (args={args!r})")


@job
def noop(task_key: str, *args: Any, **kwargs: Any) -> None:
    """Does nothing; used by benchmarks."""


@job
def sleep_for(task_key: str, seconds: float = 1.0, *args: Any, **kwargs: Any) -> str:
    """Sleeps ``seconds``; used by overlap and crash tests."""
    import time

    time.sleep(float(seconds))
    return f"slept {seconds}"


@job
def spawn_child(task_key: str, *args: Any, **kwargs: Any) -> str:
    """Starts another Celery task, which inherits this run's trace ID."""
    from workers.registry import JOBS

    JOBS["test_interval"].celery_task.delay(f"{task_key}.child", "from-parent")
    return "spawned"


@job(acks_late=True, reject_on_worker_lost=True)
def slow_acks_late(task_key: str, seconds: float = 5.0, *args: Any, **kwargs: Any) -> str:
    """Sleeps ``seconds`` with ``acks_late``: a run cut off by a worker crash is redelivered and runs again."""
    import time

    logger.info("slow_acks_late started: %s", _describe(task_key, args, kwargs))
    time.sleep(float(seconds))
    return f"slept {seconds}"


@job(autoretry_for=(ConnectionError,), max_retries=2, default_retry_delay=1)
def flaky(task_key: str, *args: Any, **kwargs: Any) -> str:
    """Fails its first attempt with a retryable error; Celery retries it (the run shows ``retrying``)."""
    from celery import current_task

    if not current_task.request.retries:
        raise ConnectionError(f"{task_key}: upstream not ready yet")
    return f"ok after {current_task.request.retries} retries"
