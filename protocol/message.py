"""What a tablebeat task message carries besides the job's own arguments.

Beat (``scheduler.dispatch``) writes these names and the worker (``workers.recording``)
reads them; a row's ``kwargs`` may not use the reserved ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Keyword argument holding the ``execute_task.id`` of the run.
SUB_TASK_ID = "sub_task_id"
#: Keyword argument holding the run's trace ID (kept for jobs written against the original system).
TRACE_KWARG = "__unique_trace_id__"
#: The job's first positional parameter: jobs are called as ``fn(task_key, *args, **kwargs)``.
TASK_KEY_ARG = "task_key"
#: The worker's call of a job goes through ``RecordedTask.__call__(self, *args, **kwargs)``.
SELF_ARG = "self"
#: Names the call of a job itself uses; a row's ``kwargs`` must not name them (the call would
#: fail with "got multiple values for argument" before the run is recorded).
RESERVED_KWARGS = frozenset({SUB_TASK_ID, TRACE_KWARG, TASK_KEY_ARG, SELF_ARG})

#: Message header holding the run's trace ID (also handed on to tasks a job starts).
TRACE_HEADER = "trace_id"
#: Message header holding the row's ``task_key``.
TASK_KEY_HEADER = "task_key"
#: Message headers that let a worker start a fresh run with one UPDATE (no lookup of the task row).
TASK_ID_HEADER = "tablebeat_task_id"
MAX_INSTANCES_HEADER = "tablebeat_max_instances"
#: Message header holding the run's ``execute_task.id`` (also in the body's kwargs): lets a worker
#: record the run ``failed`` when the body cannot be decoded.
RUN_ID_HEADER = "tablebeat_run_id"
#: Message header holding the task's config stamp (``coalesce(update_at, create_at)``, ISO 8601)
#: when beat claimed the fire: the worker starts the run only if the task still has that config.
CONFIG_AT_HEADER = "tablebeat_config_at"

#: Class attribute set on the Celery task of every registered job (``workers.recording.RecordedTask``).
JOB_MARKER = "tablebeat_job"


def job_names(tasks: Mapping[str, Any]) -> frozenset[str]:
    """Names of the registered tablebeat jobs among a Celery app's ``tasks``."""
    return frozenset(name for name, task in tasks.items() if getattr(task, JOB_MARKER, False))
