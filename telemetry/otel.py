"""OpenTelemetry for tablebeat (``TABLEBEAT_OTEL=on``, needs ``pip install 'tablebeat[otel]'``).

The run's trace ID *is* the OpenTelemetry trace ID: beat makes a 32-hex trace ID per fire
(``protocol.trace``) and the spans of that run are created with it, so a trace ID found in
``execute_task``, a log line or an alert opens the run's trace. Messages carry it as a W3C
``traceparent`` header whose parent span is beat's ``tablebeat.fire`` span (claim ->
publish); the worker's ``tablebeat.run`` span is its child, and a Celery task a job starts
continues the same trace. With the setting off (the default) every hook here is one check
of a module global, and nothing of OpenTelemetry is imported.

Exporting: if the process already has an SDK tracer provider (``opentelemetry-instrument``,
or your own set-up) tablebeat uses it; otherwise it installs one that sends OTLP over HTTP
(``OTEL_EXPORTER_OTLP_ENDPOINT``, default ``http://localhost:4318``).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from protocol.trace import TRACEPARENT_HEADER, fire_span_id, parse_traceparent, traceparent

logger = logging.getLogger("tablebeat.otel")

INSTALL_HINT = "TABLEBEAT_OTEL=on needs OpenTelemetry's SDK: pip install 'tablebeat[otel]'"
#: Exceptions Celery uses for control flow (``celery.exceptions``): they end a span without an error.
CONTROL_FLOW = frozenset({"Retry", "Ignore", "Reject"})
#: Claimed fires whose publish is awaited, remembered for their span's start (oldest dropped first).
PENDING_FIRES_KEPT = 100_000


class _Ids:
    """An id generator that hands out the run's own ids when asked to, else defers to the SDK's."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback
        self.preset: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
            "tablebeat_otel_ids", default=None
        )

    def generate_trace_id(self) -> int:
        preset = self.preset.get()
        return preset[0] if preset else int(self.fallback.generate_trace_id())

    def generate_span_id(self) -> int:
        preset = self.preset.get()
        if preset and preset[1]:
            self.preset.set((preset[0], 0))  # the preset span id is for the first span only
            return preset[1]
        return int(self.fallback.generate_span_id())

    def is_trace_id_random(self) -> bool:
        return True


class Tracing:
    """The tracer of one process, with run-id presetting, and what a fire span is built from."""

    def __init__(self, tracer: Any, ids: _Ids) -> None:
        from opentelemetry import context, trace
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.trace, self.context, self.tracer, self.ids = trace, context, tracer, ids
        self.SpanKind, self.Status, self.StatusCode = SpanKind, Status, StatusCode
        self.claimed_ns: OrderedDict[str, int] = OrderedDict()
        # A fire span is finished when it is made, so it goes straight to the span processors'
        # on_end as a ReadableSpan (what the SDK's Span hands them) with these shared parts.
        self.ReadableSpan, self.SpanContext = ReadableSpan, trace.SpanContext
        self.processor, self.resource = tracer.span_processor, tracer.resource
        self.scope = InstrumentationScope("tablebeat")
        random_flag = getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)  # ids are random (SDK >= 1.40 flag)
        self.fire_flags = trace.TraceFlags(trace.TraceFlags.SAMPLED | random_flag)
        self.empty_context = context.Context()
        self.always_sampled = _always_samples_roots(tracer.sampler)

    def sampled(self, trace_id: str) -> bool:
        """The sampler's decision for a fire's root span, known at claim time so the header's flag
        agrees with the span made at publish (ratio samplers decide by the trace ID alone)."""
        if self.always_sampled:
            return True
        result = self.tracer.sampler.should_sample(self.empty_context, int(trace_id, 16), "tablebeat.fire")
        return bool(result.decision.is_sampled())

    @contextmanager
    def preset(self, trace_id: str, span_id: int = 0) -> Iterator[None]:
        token = self.ids.preset.set((int(trace_id, 16), span_id))
        try:
            yield
        finally:
            self.ids.preset.reset(token)


def _always_samples_roots(sampler: Any) -> bool:
    """Whether ``sampler`` keeps every root span (the SDK's default is ParentBased(ALWAYS_ON));
    exact SDK types only, since a subclass may decide otherwise under the same description."""
    from opentelemetry.sdk.trace.sampling import ParentBased, StaticSampler

    if type(sampler) not in (ParentBased, StaticSampler):
        return False
    description = str(sampler.get_description())
    return description == "AlwaysOnSampler" or description.startswith("ParentBased{root:AlwaysOnSampler,")


_on: Tracing | None = None


def available() -> bool:
    """Whether OpenTelemetry's SDK is installed."""
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


def start(enabled: bool, service_name: str) -> bool:
    """Turn tracing on for this process when ``enabled`` (the ``otel`` setting); returns whether it is on."""
    global _on
    if _on is not None:
        return True
    if not enabled:
        return False
    if not available():
        raise RuntimeError(INSTALL_HINT)
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = _default_provider(service_name)
        trace.set_tracer_provider(provider)
    tracer: Any = provider.get_tracer("tablebeat")  # the SDK's Tracer (it has id_generator)
    ids = _Ids(tracer.id_generator)
    tracer.id_generator = ids  # this tracer only: other instrumentation keeps its own ids
    _on = Tracing(tracer, ids)
    logger.info("tablebeat: OpenTelemetry spans on (%s)", type(provider).__name__)
    return True


def stop() -> None:
    """Turn tracing off in this process (tests)."""
    global _on
    _on = None


def flush() -> None:
    """Export what is buffered (a pool child may exit without running atexit handlers)."""
    if _on is not None:
        provider = _on.trace.get_tracer_provider()
        force = getattr(provider, "force_flush", None)
        if force is not None:
            force(timeout_millis=2000)


def _default_provider(service_name: str) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        logger.warning("tablebeat: no OTLP exporter installed; spans are made but not sent (%s)", INSTALL_HINT)
        return provider
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


# --- beat hooks --------------------------------------------------------------------------


def fire_headers(trace_id: str) -> dict[str, str]:
    """Headers of a fire's message (``traceparent``), built at claim time; empty when tracing is off."""
    if _on is None:
        return {}
    sampled = _on.sampled(trace_id)
    claimed = _on.claimed_ns
    claimed[trace_id] = time.time_ns() if sampled else 0  # 0: not sampled, no span at publish
    if len(claimed) > PENDING_FIRES_KEPT:
        claimed.popitem(last=False)
    return {TRACEPARENT_HEADER: traceparent(trace_id, fire_span_id(trace_id), sampled)}


def fires_published(items: Iterable[Any]) -> None:
    """One ``tablebeat.fire`` span per published fire, from its claim to now (beat's ``Dispatch`` items).

    The span is made finished and handed to the span processors' ``on_end`` (their ``on_start``
    is not called): no Span object, context or attribute validation per fire, which at
    thousands of fires a second is most of what a span costs beat.
    """
    if _on is None:
        return
    now = time.time_ns()
    claimed, readable, span_context, on_end = _on.claimed_ns, _on.ReadableSpan, _on.SpanContext, _on.processor.on_end
    resource, scope, flags, producer = _on.resource, _on.scope, _on.fire_flags, _on.SpanKind.PRODUCER
    for item in items:
        started = claimed.pop(item.trace_id, None)
        if started is None:  # claimed before this process traced (an outbox republish): decide now
            started = now if _on.sampled(item.trace_id) else 0
        if not started:
            continue
        trace_id = int(item.trace_id, 16)
        span = readable(
            "tablebeat.fire",
            # The span id is the trace id's second half (protocol.trace.fire_span_id).
            context=span_context(trace_id, trace_id & 0xFFFFFFFFFFFFFFFF, False, flags),
            resource=resource,
            attributes={
                "tablebeat.task_key": item.task_key,
                "tablebeat.run_id": item.run_id,
                "tablebeat.job": item.job_name,
            },
            kind=producer,
            start_time=started,
            end_time=now,
            instrumentation_scope=scope,
        )
        on_end(span)


# --- worker hooks --------------------------------------------------------------------------


class _RunSpan:
    """The ``tablebeat.run`` span of one run, current while the job runs (a plain class: a
    generator context manager costs a few µs a run)."""

    __slots__ = ("on", "span", "token")

    def __init__(self, on: Tracing, span: Any) -> None:
        self.on, self.span = on, span
        self.token: Any = None

    def __enter__(self) -> Any:
        self.token = self.on.context.attach(self.on.trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            # Celery's control-flow exceptions (a retry, an ignored duplicate) are not failures.
            if isinstance(exc, Exception) and type(exc).__name__ not in CONTROL_FLOW:
                self.span.record_exception(exc)
                self.span.set_status(self.on.Status(self.on.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            self.on.context.detach(self.token)
            self.span.end()


_NO_SPAN = nullcontext()


def run_span(
    job: str, task_key: str | None, trace_id: str | None, run_id: int | None, headers: Mapping[str, Any]
) -> AbstractContextManager[Any]:
    """The ``tablebeat.run`` span around a job, the child of the message's ``traceparent``.

    Without a ``traceparent`` (a run started by ``.delay()``) the span starts the run's
    trace under the run's own trace ID. Entering yields the span (None when tracing is off).
    """
    if _on is None:
        return _NO_SPAN
    parent = _parent_context(headers.get(TRACEPARENT_HEADER))
    attributes: dict[str, str | int] = {"tablebeat.job": job}
    if task_key:
        attributes["tablebeat.task_key"] = task_key
    if run_id is not None:
        attributes["tablebeat.run_id"] = run_id
    name, consumer = f"tablebeat.run {job}", _on.SpanKind.CONSUMER
    if parent is None and trace_id:
        with _on.preset(trace_id):
            span = _on.tracer.start_span(name, kind=consumer, attributes=attributes)
    else:
        span = _on.tracer.start_span(name, context=parent, kind=consumer, attributes=attributes)
    return _RunSpan(_on, span)


def inject(headers: dict[str, Any]) -> None:
    """Put the current span's ``traceparent`` on a message a job publishes, so its task continues the trace."""
    if _on is None or headers.get(TRACEPARENT_HEADER):
        return
    context = _on.trace.get_current_span().get_span_context()
    if context.is_valid:
        headers[TRACEPARENT_HEADER] = traceparent(f"{context.trace_id:032x}", f"{context.span_id:016x}")


def _parent_context(header: Any) -> Any:
    parsed = parse_traceparent(header) if isinstance(header, str) else None
    if parsed is None or _on is None:
        return None
    trace_id, span_id, sampled = parsed
    span_context = _on.trace.SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=_on.trace.TraceFlags(0x01 if sampled else 0x00),
    )
    return _on.trace.set_span_in_context(_on.trace.NonRecordingSpan(span_context))
