"""The worker side of tablebeat: the Celery app, the job registry and run recording.

``celery -A workers worker`` and ``celery -A workers beat`` load this package.
"""

from __future__ import annotations

import importlib

from workers import heartbeat as _heartbeat  # noqa: F401  (connects worker liveness signals)
from workers import tracing as _tracing  # noqa: F401  (connects logging and publish signals)
from workers.celery_app import app
from workers.registry import JOBS, job, registered_names


def _import_job_modules() -> None:
    for module in app.conf.tablebeat_job_modules:
        importlib.import_module(module)


_import_job_modules()

__all__ = ["JOBS", "app", "job", "registered_names"]
