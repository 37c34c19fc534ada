"""The base Celery task of every job: records each run in ``execute_task``.

Bookkeeping lives here once; job functions hold business logic only.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from contextvars import Token
from datetime import UTC, datetime
from typing import Any

from celery import Task, signals
from celery.exceptions import Ignore, Retry

from alerts import webhook
from alerts.webhook import alert_run
from models import RunStatus
from protocol.message import (
    CONFIG_AT_HEADER,
    MAX_INSTANCES_HEADER,
    SUB_TASK_ID,
    TASK_ID_HEADER,
    TRACE_HEADER,
    TRACE_KWARG,
)
from protocol.trace import TRACEPARENT_HEADER, new_trace_id
from telemetry import otel
from workers import metrics
from workers.celery_app import settings
from workers.message_match import RunMessage
from workers.runs import RunStore, StartDecision
from workers.tracing import current_run_id, current_task_key, current_trace_id

logger = logging.getLogger("tablebeat.run")

_settings = settings()
#: One store per worker process; its engine is built lazily after the fork.
run_store = RunStore(_settings.database_url, worker_dead_seconds=_settings.worker_dead_seconds)
webhook.configure(_settings)


class RecordedTask(Task):  # type: ignore[misc]  # Celery is untyped
    """Runs a registered job function and moves its run row through its states."""

    abstract = True
    #: By path: Celery resolves it in the worker only (beat, loading the same tasks, never imports it).
    Request = "workers.traced_request:TracedRequest"
    #: Marks the Celery task of a registered job (beat finds job names by it: ``protocol.message.job_names``).
    tablebeat_job = True

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        # ``self`` positional-only: a message whose kwargs hold "self" reaches the job (which then
        # fails, recorded) instead of failing this call before the run is recorded.
        request = self.request
        # task_prerun has usually set the context already; a direct call sets it here.
        task_key = current_task_key.get() or (str(args[0]) if args else self.name)
        trace_id = current_trace_id.get() or kwargs.get(TRACE_KWARG) or _header_trace_id(request) or new_trace_id()
        run_id = kwargs.get(SUB_TASK_ID)
        if run_id is not None and _as_run_id(run_id) is None:
            logger.error("message refused as forged: sub_task_id %r is not a run id", run_id)
            metrics.start_refused("forged")
            raise Ignore()
        manual = run_id is None
        kwargs_in = kwargs
        key_token = current_task_key.set(task_key)
        trace_token = current_trace_id.set(trace_id)
        run_token = current_run_id.set(_as_run_id(run_id))
        try:
            if run_id is None:
                run_id = run_store.create_manual_run(task_key, trace_id, request.id or "")
                current_run_id.set(int(run_id))
            kwargs = {**kwargs, SUB_TASK_ID: run_id, TRACE_KWARG: trace_id}
            worker = request.hostname or ""
            task_id = _header_int(request, TASK_ID_HEADER)
            message = RunMessage(
                run_id=int(run_id),
                # Only a trace ID the message itself carries proves anything about the row it names.
                trace_id=trace_id if manual else (_kwarg_trace_id(kwargs_in) or _header_trace_id(request)),
                job_name=self.name,
                task_id=task_id,
                config_at=_header_datetime(request, CONFIG_AT_HEADER),
                manual=manual,
            )
            start = run_store.start_run(
                message, request.id or "", worker, max_instances=_header_int(request, MAX_INSTANCES_HEADER)
            )
            attempt = start.attempt
            if start.decision is StartDecision.FORGED:
                logger.error("run %s not started: forged message refused (%s)", run_id, start.reason)
                metrics.start_refused("forged")
                raise Ignore()
            if start.decision is StartDecision.CANCELLED:
                logger.warning("run %s skipped: %s", run_id, start.reason)
                metrics.start_refused("changed")
                metrics.run_finished(self.name, task_key, RunStatus.SKIPPED.value, None)
                return None
            if start.decision is StartDecision.DUPLICATE:
                logger.warning("run %s not started: %s", run_id, start.reason)
                metrics.start_refused("duplicate")
                raise Ignore()
            if start.decision is StartDecision.SKIPPED:
                logger.warning("run %s skipped: %s", run_id, start.reason)
                metrics.start_refused("max_instances")
                metrics.run_finished(self.name, task_key, RunStatus.SKIPPED.value, None)
                return None
            logger.info("run %s started (attempt %s)", run_id, attempt)
            return self._run_and_record(int(run_id), args, kwargs, attempt, worker, task_id)
        finally:
            current_run_id.reset(run_token)
            current_trace_id.reset(trace_token)
            current_task_key.reset(key_token)

    def _run_and_record(
        self,
        run_id: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        attempt: int,
        worker: str,
        task_id: int | None,
    ) -> Any:
        headers = {TRACEPARENT_HEADER: _header(self.request, TRACEPARENT_HEADER)}
        with otel.run_span(self.name, current_task_key.get(), current_trace_id.get(), run_id, headers):
            return self._record_run(run_id, args, kwargs, attempt, worker, task_id)

    def _record_run(
        self,
        run_id: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        attempt: int,
        worker: str,
        task_id: int | None,
    ) -> Any:
        # Every write below is guarded on the row still being this attempt's 'running' row.
        mine: dict[str, Any] = {"attempt": attempt, "worker": worker, "task_id": task_id}
        began = time.perf_counter()
        metrics.run_started()
        try:
            # Through ``run`` so Celery's own wrappers (autoretry_for, ...) apply to the job.
            result = self.run(*args, **kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
        except Retry as exc:
            run_store.finish_run(run_id, RunStatus.RETRYING, error=f"retrying: {exc}", **mine)
            metrics.run_finished(self.name, current_task_key.get(), "retrying", time.perf_counter() - began)
            logger.info("run %s will be retried: %s", run_id, exc)
            raise
        except Exception as exc:
            written = run_store.finish_run(run_id, RunStatus.FAILED, error=traceback.format_exc(), **mine)
            metrics.run_finished(self.name, current_task_key.get(), "failed", time.perf_counter() - began)
            logger.error("run %s failed: %s: %s", run_id, type(exc).__name__, exc)
            if written:
                alert_run(run_id, RunStatus.FAILED)  # issue 3 item 5: queued, sent by a background thread
            raise
        run_store.finish_run(run_id, RunStatus.SUCCESS, result=repr(result), **mine)
        metrics.run_finished(self.name, current_task_key.get(), "success", time.perf_counter() - began)
        logger.info("run %s succeeded", run_id)
        return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _header(request: Any, name: str) -> Any:
    """A message header: Celery exposes custom headers as request attributes, or in ``headers``."""
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def _header_int(request: Any, name: str) -> int | None:
    """An integer header beat put on the message (None when absent, e.g. a ``.delay()`` call)."""
    value = _header(request, name)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _request_task_key(request: Any) -> str | None:
    """The task_key of a run's message (its first positional argument)."""
    args = getattr(request, "args", None) or ()
    return str(args[0]) if args else None


def _as_run_id(value: Any) -> int | None:
    """``value`` as a run id (a positive integer), or None."""
    if isinstance(value, bool):
        return None
    try:
        run_id = int(value)
    except (TypeError, ValueError):
        return None
    return run_id if run_id > 0 else None


def _header_datetime(request: Any, name: str) -> datetime | None:
    """An ISO 8601 instant header beat put on the message (None when absent or unreadable)."""
    value = _header(request, name)
    try:
        parsed = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _kwarg_trace_id(kwargs: dict[str, Any]) -> str | None:
    value = kwargs.get(TRACE_KWARG)
    return str(value) if value else None


def _header_trace_id(request: Any) -> str | None:
    """The trace ID a parent run attached to this message, if any."""
    value = _header(request, TRACE_HEADER)
    return str(value) if value else None


_run_context_tokens: dict[str, tuple[Token[str | None], Token[str | None], Token[int | None]]] = {}


@signals.task_prerun.connect
def _enter_run_context(task_id: str = "", task: Any = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    """Set task_key/trace_id for the whole run, so Celery's own lines about it carry them too."""
    kwargs = kwargs or {}
    request = getattr(task, "request", None)
    trace_id = kwargs.get(TRACE_KWARG) or _header_trace_id(request) or new_trace_id()
    if isinstance(task, RecordedTask) and args:
        task_key = str(args[0])
    else:
        task_key = getattr(task, "name", "") or "-"
    _run_context_tokens[task_id] = (
        current_task_key.set(task_key),
        current_trace_id.set(trace_id),
        current_run_id.set(_as_run_id(kwargs.get(SUB_TASK_ID))),
    )


@signals.task_postrun.connect
def _leave_run_context(task_id: str = "", **_: Any) -> None:
    tokens = _run_context_tokens.pop(task_id, None)
    if tokens is not None:
        current_task_key.reset(tokens[0])
        current_trace_id.reset(tokens[1])
        current_run_id.reset(tokens[2])


@signals.worker_process_init.connect
def _reset_store_after_fork(**_: Any) -> None:
    run_store.reset_after_fork()


@signals.worker_process_shutdown.connect
def _release_held_connection(**_: Any) -> None:
    run_store.held.release()


@signals.task_revoked.connect
def _record_expired(request: Any = None, expired: bool = False, **_: Any) -> None:
    """A message past its ``expires`` is never run; its row says ``expired``."""
    if request is None:
        return
    run_id = (getattr(request, "kwargs", None) or {}).get(SUB_TASK_ID)
    if run_id is None:
        return
    status = RunStatus.EXPIRED if expired else RunStatus.SKIPPED
    trace_id = _kwarg_trace_id(getattr(request, "kwargs", None) or {}) or _header_trace_id(request)
    if trace_id is None:
        logger.error("run %s: %s message carries no trace ID; not recorded (forged?)", run_id, status.value)
        return
    try:
        # Only a run nobody started: a stray copy of a message must not overwrite a finished run.
        written = run_store.finish_run(
            int(run_id),
            status,
            result="expired before start" if expired else "revoked",
            from_statuses=(RunStatus.PENDING.value, RunStatus.RETRYING.value),
            trace_id=trace_id,
        )
    except Exception:  # a bookkeeping failure must not take the worker down
        logger.critical("could not record %s of run %s", status.value, run_id, exc_info=True)
        return
    if written:
        metrics.run_finished(getattr(request, "task", "") or "", _request_task_key(request), status.value, None)
    if expired and written:
        alert_run(int(run_id), RunStatus.EXPIRED)  # issue 3 item 5


@signals.task_unknown.connect
def _record_unknown_job(name: str = "", message: Any = None, exc: Any = None, **_: Any) -> None:
    """A message for a job this worker does not have: its run is recorded ``failed`` (and alerted),
    not left ``pending`` for ever.  Only the message's own run (matched by trace ID)."""
    try:
        run_id, trace_id = _run_of_message(message)
    except Exception:  # an unreadable body: beat's pending sweep closes the run
        return
    if run_id is None or trace_id is None:
        return
    reason = (
        f"not started: job {name!r} is not registered on this worker; "
        "list the module that registers it in TABLEBEAT_JOB_MODULES"
    )
    try:
        written = run_store.finish_run(
            run_id,
            RunStatus.FAILED,
            error=reason,
            from_statuses=(RunStatus.PENDING.value, RunStatus.RETRYING.value),
            trace_id=trace_id,
        )
    except Exception:  # a bookkeeping failure must not take the worker down
        logger.critical("could not record the failure of run %s (unknown job %r)", run_id, name, exc_info=True)
        return
    if written:
        logger.error("run %s failed: %s", run_id, reason, extra={"trace_id": trace_id, "run_id": run_id})
        metrics.run_finished(name, None, RunStatus.FAILED.value, None)
        alert_run(run_id, RunStatus.FAILED)


def _run_of_message(message: Any) -> tuple[int | None, str | None]:
    """(run id, trace ID) a raw task message names (protocol 2 body ``[args, kwargs, embed]`` or 1)."""
    body = message.decode() if hasattr(message, "decode") else message.body
    kwargs: dict[str, Any] = {}
    if isinstance(body, (list, tuple)) and len(body) >= 2 and isinstance(body[1], dict):
        kwargs = body[1]
    elif isinstance(body, dict):
        kwargs = body.get("kwargs") or {}
    headers = getattr(message, "headers", None) or {}
    trace = kwargs.get(TRACE_KWARG) or headers.get(TRACE_HEADER)
    return _as_run_id(kwargs.get(SUB_TASK_ID)), (str(trace) if trace else None)
