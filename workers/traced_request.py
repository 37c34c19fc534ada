"""The worker's request class, which remembers the run a delivered message names (for log lines).

Its own module because it subclasses ``celery.worker.request.Request``: ``RecordedTask`` names it
by path, so only a worker imports it (Celery resolves ``Task.Request`` when it builds the strategy),
not beat, which loads the same tasks (1.1 MiB and ~10 ms of its start).
"""

from __future__ import annotations

from typing import Any

from celery.worker.request import Request

from protocol.message import SUB_TASK_ID, TASK_KEY_HEADER, TRACE_HEADER, TRACE_KWARG
from workers.tracing import RECEIVED_REMEMBERED, RunTags, received_runs


class TracedRequest(Request):  # type: ignore[misc]  # Celery is untyped
    """The worker's view of a delivered message; remembers the run it names for log lines.

    Celery logs "Task ... received" in the main process before any run context exists;
    the trace filter finds that line's run by the Celery task id it carries.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        headers, body_kwargs = self.request_dict, self.kwargs or {}
        trace_id = headers.get(TRACE_HEADER) or body_kwargs.get(TRACE_KWARG)
        if trace_id:
            run_id = body_kwargs.get(SUB_TASK_ID)
            key = headers.get(TASK_KEY_HEADER) or (str(self.args[0]) if self.args else None)
            received_runs[self.id] = RunTags(key, str(trace_id), None if run_id is None else int(run_id))
            while len(received_runs) > RECEIVED_REMEMBERED:
                received_runs.popitem(last=False)
