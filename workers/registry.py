"""Explicit registry of job functions: the only code the ``task`` table can name.

A job is registered by ``@job`` (under its name), or by listing its module in
``TABLEBEAT_JOB_MODULES``: every public function defined in a listed module is then a job
under its import path too (``pkg.mod:func`` and ``pkg.mod.func``), and under its bare name when
no other job has it, without ``@job``.
Nothing the table names is ever imported: the registry holds only what the listed
modules defined when the process loaded them.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, overload

from celery import signals

from conf.celery import settings_of
from workers.celery_app import app
from workers.recording import RecordedTask
from workers.signatures import CallShape

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RegisteredJob:
    """A job function and the Celery task that runs it."""

    name: str
    function: Callable[..., Any]
    celery_task: Any
    shape: CallShape | None = None
    #: What ``@job(...)`` gave ``app.task``; the import-path names of the function reuse them.
    task_options: tuple[tuple[str, Any], ...] = ()


#: name -> job. Names are what ``task.execute_func`` holds and what Flower shows.
JOBS: dict[str, RegisteredJob] = {}


@overload
def job(fn: F) -> F: ...
@overload
def job(*, name: str | None = None, **task_options: Any) -> Callable[[F], F]: ...


def job(fn: F | None = None, *, name: str | None = None, **task_options: Any) -> Any:
    """Register ``fn`` as a tablebeat job.

    The function may take ``(task_key, *args, **kwargs)``, named parameters, or nothing: the
    worker passes only what its signature accepts (see :mod:`workers.signatures`).
    ``task_options`` go to ``app.task`` (``acks_late=True``, ``max_retries=3``...).
    """

    def register(func: F) -> F:
        _register(name or func.__name__, func, task_options)
        return func

    return register(fn) if fn is not None else register


def _register(job_name: str, func: Callable[..., Any], task_options: dict[str, Any]) -> None:
    existing = JOBS.get(job_name)
    if existing is not None:
        if existing.function is func:
            return
        raise ValueError(f"job name {job_name!r} is already registered by {existing.function!r}")
    bound = bool(task_options.get("bind"))
    shape = CallShape.of(job_name, func, bound=bound)

    @functools.wraps(func)
    def body(*args: Any, **kwargs: Any) -> Any:
        task, args = (args[:1], args[1:]) if bound else ((), args)  # bind=True: Celery's task comes first
        call_args, call_kwargs = shape.arguments(args[0] if args else job_name, args[1:], kwargs)
        return func(*task, *call_args, **call_kwargs)

    # Celery checks call arguments against the body's signature; the body takes anything.
    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
            inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
        ]
    )
    celery_task = app.task(name=job_name, base=RecordedTask, **task_options)(body)
    JOBS[job_name] = RegisteredJob(job_name, func, celery_task, shape, tuple(task_options.items()))


def module_functions(module: ModuleType) -> list[tuple[str, Callable[..., Any]]]:
    """The public functions ``module`` itself defines (not ones it imported), by name."""
    out: list[tuple[str, Callable[..., Any]]] = []
    for attr, value in vars(module).items():
        if attr.startswith("_") or not inspect.isfunction(value):
            continue
        if getattr(value, "__module__", None) != module.__name__:
            continue
        out.append((attr, value))
    return out


def register_module(module: ModuleType) -> list[str]:
    """Register every public function of ``module`` under ``mod:func`` and ``mod.func``."""
    names = []
    options = {id(j.function): dict(j.task_options) for j in JOBS.values()}
    for attr, func in module_functions(module):
        for job_name in (f"{module.__name__}:{attr}", f"{module.__name__}.{attr}"):
            _register(job_name, func, options.get(id(func), {}))
            names.append(job_name)
        # The bare name too (000/001 rows name ``test_cron``), unless another job has it already:
        # the first listed module defining a name wins, a later one keeps its paths only.
        if attr not in JOBS:
            _register(attr, func, options.get(id(func), {}))
            names.append(attr)
        elif JOBS[attr].function is not func:
            logger.warning(
                "job name %r is taken by %r; %s.%s is a job under its paths only",
                attr,
                JOBS[attr].function,
                module.__name__,
                attr,
            )
    return names


def import_job_modules(modules: Iterable[str]) -> None:
    """Import the listed job modules (the only imports the job list causes) and register them."""
    for name in modules:
        register_module(importlib.import_module(name))


@signals.import_modules.connect
def _import_at_start(sender: Any = None, **_: Any) -> None:
    """Worker and beat start-up (Celery imports ``imports`` right after this signal)."""
    import_job_modules(settings_of(app.conf).job_modules)


def registered_names() -> frozenset[str]:
    """Names of every registered job."""
    return frozenset(JOBS)
