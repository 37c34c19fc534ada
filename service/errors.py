"""Errors of the service layer (``service/tasks.py``), shared by the REST API and the CLI.

Each error carries what both front ends need: the HTTP status the API answers with and
the exit code the CLI ends with, so neither has to map errors by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from scheduler.errors import RowError

__all__ = [
    "BrokerUnreachable",
    "rows_checked",
    "DuplicateTask",
    "ServiceError",
    "TaskNotFound",
    "ValidationFailed",
]

#: CLI exit codes.
EXIT_NOT_FOUND = 1
EXIT_BAD_INPUT = 2


class ServiceError(Exception):
    """Base class: ``http_status`` for the API, ``exit_code`` for the CLI."""

    http_status = 400
    exit_code = EXIT_BAD_INPUT
    #: The request field the error is about, when there is one.
    field: str | None = None


class ValidationFailed(ServiceError, ValueError):
    """A field of a request is not acceptable; the message names the field and the reason."""

    http_status = 422

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class DuplicateTask(ServiceError):
    """Another task already has this ``task_key``."""

    http_status = 409

    def __init__(self, task_key: str) -> None:
        self.field = "task_key"
        self.task_key = task_key
        super().__init__(f"task_key: a task named {task_key!r} already exists")


class TaskNotFound(ServiceError, LookupError):
    """No task has this id or ``task_key``."""

    http_status = 404
    exit_code = EXIT_NOT_FOUND

    def __init__(self, ref: str | int) -> None:
        self.ref = ref
        super().__init__(f"no task with id or task_key {str(ref)!r}")


class RunNotFound(ServiceError, LookupError):
    """No run (``execute_task`` row) with that id."""

    http_status = 404
    exit_code = EXIT_NOT_FOUND

    def __init__(self, run_id: str | int) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {str(run_id)!r}")


class BrokerUnreachable(ServiceError, ConnectionError):
    """The run was recorded but its message could not be published now."""

    http_status = 503
    exit_code = EXIT_NOT_FOUND

    def __init__(self, run_id: int, trace_id: str, reason: str) -> None:
        self.run_id = run_id
        self.trace_id = trace_id
        super().__init__(
            f"broker unreachable ({reason}); run {run_id} (trace {trace_id}) is recorded as pending "
            "and beat will publish it when the broker is back"
        )


@contextmanager
def rows_checked(field: str | None = None) -> Iterator[None]:
    """Report a :class:`RowError` of beat's row checks as :class:`ValidationFailed` of the same column
    (or of ``field``), so the API and CLI name what the operator sent."""
    try:
        yield
    except RowError as exc:
        raise ValidationFailed(field or exc.column, exc.reason) from None
