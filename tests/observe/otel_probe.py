"""Beat and a worker in one process with OpenTelemetry's in-memory exporter; prints the spans as JSON.

Run by ``test_otel.py`` as ``python -m tests.observe.otel_probe SECONDS`` with the database,
broker and ``TABLEBEAT_OTEL=on`` in the environment. Beat ticks in the main thread; the
worker (solo pool) consumes in a thread (``celery.contrib.testing.worker``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def main(seconds: float) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # before tablebeat starts: it uses the provider it finds

    from celery.contrib.testing.worker import start_worker

    import workers
    from scheduler.beat import SqlScheduler

    app = workers.app
    settings = dataclasses.replace(workers.settings(), poll_seconds=0.1, lookahead_seconds=0.3)
    workers.load_job_modules()
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        beat = SqlScheduler(app, settings=settings)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(min(beat.tick(), 0.05))
        time.sleep(1.0)  # the last runs and the child task finish
        beat.close()
    spans = [
        {
            "name": span.name,
            "trace_id": f"{span.context.trace_id:032x}",
            "span_id": f"{span.context.span_id:016x}",
            "parent": f"{span.parent.span_id:016x}" if span.parent else None,
            "status": span.status.status_code.name,
            "attributes": dict(span.attributes or {}),
            "events": [event.name for event in span.events],
        }
        for span in exporter.get_finished_spans()
    ]
    print(json.dumps(spans, default=str))


if __name__ == "__main__":
    main(float(sys.argv[1]))
