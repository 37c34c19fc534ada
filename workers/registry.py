"""Explicit registry of job functions: the only code the ``task`` table can name."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from workers.celery_app import app
from workers.recording import RecordedTask

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class RegisteredJob:
    """A job function and the Celery task that runs it."""

    name: str
    function: Callable[..., Any]
    celery_task: Any


#: name -> job. Names are what ``task.execute_func`` holds and what Flower shows.
JOBS: dict[str, RegisteredJob] = {}


@overload
def job(fn: F) -> F: ...
@overload
def job(*, name: str | None = None, **task_options: Any) -> Callable[[F], F]: ...


def job(fn: F | None = None, *, name: str | None = None, **task_options: Any) -> Any:
    """Register ``fn`` as a tablebeat job, callable as ``fn(task_key, *args, **kwargs)``.

    ``task_options`` go to ``app.task`` (``acks_late=True``, ``max_retries=3``...).
    """

    def register(func: F) -> F:
        job_name = name or func.__name__
        if job_name in JOBS and JOBS[job_name].function is not func:
            raise ValueError(f"job name {job_name!r} is already registered by {JOBS[job_name].function!r}")

        @functools.wraps(func)
        def body(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

        celery_task = app.task(name=job_name, base=RecordedTask, **task_options)(body)
        JOBS[job_name] = RegisteredJob(job_name, func, celery_task)
        return func

    return register(fn) if fn is not None else register


def registered_names() -> frozenset[str]:
    """Names of every registered job."""
    return frozenset(JOBS)
