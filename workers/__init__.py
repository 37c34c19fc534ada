"""The worker side of tablebeat: the Celery app, the job registry and run recording.

``celery -A workers worker`` and ``celery -A workers beat`` load this package. Importing it
imports no job module: the worker and beat import them at start-up (Celery's ``import_modules``
signal, ``workers.registry``, from ``TABLEBEAT_JOB_MODULES``); other processes call :func:`load_job_modules`.
"""

from __future__ import annotations

from collections.abc import Iterable

from workers import flower_options as _flower_options  # noqa: F401  (lets Flower read '--port 5566')
from workers import heartbeat as _heartbeat  # noqa: F401  (connects worker liveness signals)
from workers import log_file as _log_file  # noqa: F401  (connects the log-file setting)
from workers import metrics as _metrics  # noqa: F401  (connects the metrics server to worker start)
from workers import tracing as _tracing  # noqa: F401  (connects logging and publish signals)
from workers.celery_app import app, settings
from workers.registry import JOBS, import_job_modules, job, registered_names


def load_job_modules(modules: Iterable[str] | None = None) -> frozenset[str]:
    """Import ``modules`` (default: the ``job_modules`` setting) once, register their jobs, return the job names."""
    import_job_modules(settings().job_modules if modules is None else modules)
    return registered_names()


__all__ = ["JOBS", "app", "job", "load_job_modules", "registered_names"]
