"""``python -m bench.observability_cost``: the CPU each observability hook adds, measured in-process.

Beat's per-fire hooks (claimed + published metrics; OTel fire headers + span) and the worker's
per-run hooks (metrics; OTel run span), in prometheus-client's multiprocess mode and with an
SDK tracer provider whose batch processor exports to a null exporter (export cost excluded).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

N = 20_000


class _Conf(dict[str, Any]):
    pass


def main() -> int:
    from telemetry import exposition

    exposition.prepare_multiprocess_dir(1)
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Null(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Null()))
    trace.set_tracer_provider(provider)

    from scheduler import metrics as beat_metrics
    from telemetry import otel
    from workers import metrics as worker_metrics

    beat_metrics._on = beat_metrics.BeatMetrics(())
    worker_metrics._on = worker_metrics.WorkerMetrics(())
    otel.start(_Conf(tablebeat_otel=True), "bench")
    now = datetime.now(UTC)
    fires = [
        SimpleNamespace(trace_id=f"{(i + 1) << 64 | 7:032x}", task_key="k", run_id=i, job_name="noop", scheduled_at=now)
        for i in range(N)
    ]
    results = {}
    began = time.perf_counter()
    for fire in fires:
        beat_metrics.fire_claimed(fire.job_name, fire.task_key)
    beat_metrics.fires_published(fires)
    results["beat metrics per fire"] = time.perf_counter() - began
    began = time.perf_counter()
    for fire in fires:
        otel.fire_headers(fire.trace_id)
    otel.fires_published(fires)
    results["beat OTel per fire"] = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(N):
        worker_metrics.run_started()
        worker_metrics.run_finished("noop", "k", "success", 0.001)
    results["worker metrics per run"] = time.perf_counter() - began
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-8448eb211c80319c-01"}
    began = time.perf_counter()
    for i in range(N):
        with otel.run_span("noop", "k", "0af7651916cd43dd8448eb211c80319c", i, headers):
            pass
    results["worker OTel per run"] = time.perf_counter() - began
    provider.shutdown()
    exposition.remove_created()
    for name, seconds in results.items():
        print(f"{name}: {seconds / N * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
