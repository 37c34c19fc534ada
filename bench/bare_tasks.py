"""A bare Celery no-op task on the tablebeat app, for T6's baseline (no run recording).

Loaded by the bench's worker through ``TABLEBEAT_JOB_MODULES=workers.examples,bench.bare_tasks``.
"""

from __future__ import annotations

from typing import Any

from workers.celery_app import app

BARE_NOOP = "bench.bare_noop"


@app.task(name=BARE_NOOP)
def bare_noop(*args: Any, **kwargs: Any) -> None:
    """Does nothing, through plain ``celery.Task``."""
