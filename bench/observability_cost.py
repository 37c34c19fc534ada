"""``python -m bench.observability_cost``: the CPU each observability hook adds, measured in-process.

Beat's per-fire hooks (claimed + published metrics; OTel fire headers + span) and the worker's
per-run hooks (metrics; OTel run span), in prometheus-client's multiprocess mode and with an
SDK tracer provider whose batch processor encodes every span as OTLP protobuf (what the OTLP
exporter sends) and drops the bytes, so only the HTTP round trip is left out.

Costs are CPU time of the whole process (``time.process_time``: the exporter's thread
included) per operation, so they do not count time the process waited for a core; the
median and the lowest of ``--repeats`` rounds are printed with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

#: Operations per batch: about what beat publishes in one tick at 1,000-2,000 fires/s.
BATCH = 1_000


def _provider(encode: bool, ratio: float | None) -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    try:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    except ImportError:  # no OTLP exporter installed: export cost left out
        encode_spans = None
    if not encode:
        encode_spans = None

    class Encoding(SpanExporter):
        encoded = 0

        def export(self, spans: Any) -> SpanExportResult:
            if encode_spans is not None:
                self.encoded += len(encode_spans(spans).SerializeToString())
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio))) if ratio is not None else TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Encoding()))
    trace.set_tracer_provider(provider)
    print(f"span export: {'OTLP protobuf encoding' if encode_spans else 'none (OTLP exporter not installed)'}")
    return provider


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.observability_cost", description=__doc__)
    p.add_argument("-n", type=int, default=20_000, help="operations per round (default 20,000)")
    p.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--no-export", action="store_true", help="spans are dropped, not encoded (the hooks alone)")
    p.add_argument("--sample", type=float, help="trace ratio (ParentBased(TraceIdRatioBased)); default all")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    n = args.n

    from telemetry import exposition

    exposition.prepare_multiprocess_dir(1)
    provider = _provider(not args.no_export, args.sample)

    from protocol.trace import fire_span_id, traceparent
    from scheduler import metrics as beat_metrics
    from telemetry import otel
    from workers import metrics as worker_metrics

    beat_metrics._on = beat_metrics.BeatMetrics(())
    worker_metrics._on = worker_metrics.WorkerMetrics(())
    otel.start(True, "bench")
    now = datetime.now(UTC)

    def fires() -> list[Any]:
        made = []
        for i in range(n):
            trace_id = os.urandom(16).hex()
            # The header beat's sampler gives this fire (what the worker's span follows).
            sampled = otel._on is None or otel._on.sampled(trace_id)
            header = traceparent(trace_id, fire_span_id(trace_id), sampled)
            made.append(
                SimpleNamespace(
                    trace_id=trace_id, task_key="k", run_id=i, job_name="noop", scheduled_at=now, header=header
                )
            )
        return made

    def beat_metrics_case(batch: list[Any]) -> None:
        beat_metrics.fires_claimed((fire.job_name, fire.task_key) for fire in batch)
        beat_metrics.fires_published(batch)

    def beat_otel_case(batch: list[Any]) -> None:
        for fire in batch:
            otel.fire_headers(fire.trace_id)
        otel.fires_published(batch)

    def worker_metrics_case(batch: list[Any]) -> None:
        for _ in batch:
            worker_metrics.run_started()
            worker_metrics.run_finished("noop", "k", "success", 0.001)

    def worker_otel_case(batch: list[Any]) -> None:
        for fire in batch:
            headers = {"traceparent": fire.header}
            with otel.run_span("noop", "k", fire.trace_id, fire.run_id, headers):
                pass

    cases: dict[str, Callable[[list[Any]], None]] = {
        "beat metrics per fire": beat_metrics_case,
        "beat OTel per fire": beat_otel_case,
        "worker metrics per run": worker_metrics_case,
        "worker OTel per run": worker_otel_case,
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, case in cases.items():
            batch = fires()
            began = time.process_time()
            # In beat-sized batches, each exported before the next: the batch processor's queue
            # (2,048 spans) would drop the rest of a larger one, and dropped spans cost nothing.
            for at in range(0, n, BATCH):
                case(batch[at : at + BATCH])
                provider.force_flush()  # the export thread's share is part of the cost
            results[name].append((time.process_time() - began) / n * 1e6)
    provider.shutdown()
    exposition.remove_created()
    print(f"CPU per operation, {args.repeats} rounds of {n:,}; load average {os.getloadavg()[0]:.2f}")
    for name, costs in results.items():
        print(f"{name}: median {statistics.median(costs):.1f} us, lowest {min(costs):.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
