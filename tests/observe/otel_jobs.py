"""Jobs of the OpenTelemetry test: one starts a Celery task of its own, one fails."""

from __future__ import annotations

from typing import Any

from workers import JOBS, job


@job
def otel_spawn(task_key: str, *args: Any, **kwargs: Any) -> str:
    """Starts another job as an ordinary Celery task (``.delay()``): it must continue this run's trace."""
    JOBS["otel_child"].celery_task.delay("child-of-" + task_key)
    return "spawned"


@job
def otel_child(task_key: str, *args: Any, **kwargs: Any) -> str:
    return "child ok"


@job
def otel_fails(task_key: str, *args: Any, **kwargs: Any) -> None:
    raise RuntimeError("failed on purpose")
