"""OpenTelemetry (``TABLEBEAT_OTEL=on``, the ``otel`` extra), checked with the SDK's in-memory exporter.

The run's trace ID is the OTel trace ID: beat's ``tablebeat.fire`` span (claim -> publish) is
the root, the worker's ``tablebeat.run`` span its child through the ``traceparent`` header, and
a Celery task the job starts continues the same trace.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import Engine

from protocol.trace import fire_span_id, parse_traceparent, traceparent
from tests.helpers import insert_task, sql
from tests.processes import REPO

pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")
pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def test_run_trace_id_is_the_otel_trace_and_children_continue_it(env: dict[str, str], db: Engine) -> None:
    insert_task(db, "parent", "otel_spawn", "interval", "1")
    insert_task(db, "broken", "otel_fails", "interval", "1")
    probe_env = {
        **env,
        "TABLEBEAT_OTEL": "on",
        "TABLEBEAT_JOB_MODULES": "workers.examples,tests.observe.otel_jobs",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.observe.otel_probe", "4"],
        env=probe_env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    spans = json.loads(done.stdout.strip().splitlines()[-1])

    runs = sql(
        db,
        "SELECT e.id, e.trace_id, e.status, t.task_key FROM execute_task e JOIN task t ON t.id = e.task_id "
        "WHERE t.task_key = 'parent' AND e.status = 'success' ORDER BY e.id",
    )
    assert runs, done.stderr[-4000:]
    run_id, trace_id = runs[0][0], runs[0][1]
    in_trace = [s for s in spans if s["trace_id"] == trace_id]
    names = sorted(s["name"] for s in in_trace)
    assert names == ["tablebeat.fire", "tablebeat.run otel_child", "tablebeat.run otel_spawn"], in_trace

    fire = next(s for s in in_trace if s["name"] == "tablebeat.fire")
    run = next(s for s in in_trace if s["name"] == "tablebeat.run otel_spawn")
    child = next(s for s in in_trace if s["name"] == "tablebeat.run otel_child")
    assert fire["parent"] is None and fire["span_id"] == fire_span_id(trace_id)
    assert fire["attributes"]["tablebeat.run_id"] == run_id and fire["attributes"]["tablebeat.task_key"] == "parent"
    assert run["parent"] == fire["span_id"] and run["attributes"]["tablebeat.run_id"] == run_id
    assert child["parent"] == run["span_id"]
    # The child's own run row carries the same trace ID.
    child_rows = sql(db, "SELECT trace_id FROM execute_task WHERE id = :r", r=child["attributes"]["tablebeat.run_id"])
    assert child_rows == [(trace_id,)]

    failed = [s for s in spans if s["name"] == "tablebeat.run otel_fails"]
    assert failed and all(s["status"] == "ERROR" and "exception" in s["events"] for s in failed)


def test_traceparent_round_trip() -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    header = traceparent(trace_id, fire_span_id(trace_id))
    assert header == "00-0af7651916cd43dd8448eb211c80319c-8448eb211c80319c-01"
    assert parse_traceparent(header) == (trace_id, "8448eb211c80319c", True)
    for bad in ("", "00-xyz-abc-01", "ff-" + header[3:], "00-" + "0" * 32 + "-8448eb211c80319c-01"):
        assert parse_traceparent(bad) is None


def test_without_the_setting_messages_carry_no_traceparent_and_no_sdk_is_loaded(env: dict[str, str]) -> None:
    code = (
        "import sys, workers; from celery import Celery; from datetime import datetime, UTC; "
        "from scheduler.dispatch import Dispatch, Publisher; "
        "d = Dispatch(1, 'k', 'test_interval', (), {}, None, '0af7651916cd43dd8448eb211c80319c', 'c', "
        "datetime.now(UTC), None); "
        "h = Publisher(Celery(broker='memory://')).prepare(d).message.headers; "
        "print(sorted(k for k in h if k in ('traceparent', 'trace_id')), "
        "any(m.startswith('opentelemetry.sdk') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(REPO), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['trace_id'] False"


def test_header_sampled_flag_follows_the_sampler(env: dict[str, str]) -> None:
    """With a ratio sampler the traceparent flag says what beat's sampler decides for that trace ID."""
    code = (
        "from opentelemetry import trace; from opentelemetry.sdk.trace import TracerProvider; "
        "from opentelemetry.sdk.trace.sampling import TraceIdRatioBased; "
        "trace.set_tracer_provider(TracerProvider(sampler=TraceIdRatioBased(0.5))); "
        "from telemetry import otel; otel.start(True, 't'); "
        "low, high = '0' * 31 + '1', 'f' * 32; "
        "print(otel.fire_headers(low)['traceparent'][-2:], otel.fire_headers(high)['traceparent'][-2:])"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(REPO), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["01", "00"]  # ratio samplers keep the low trace IDs


def test_fire_spans_are_made_for_sampled_fires_only(env: dict[str, str]) -> None:
    """Beat hands finished fire spans to the processors: claim to publish, ids from the trace ID,
    none for a fire its sampler dropped (also for one claimed before tracing started)."""
    code = (
        "import json; from types import SimpleNamespace as F; from opentelemetry import trace; "
        "from opentelemetry.sdk.trace import TracerProvider; "
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor; "
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter; "
        "from opentelemetry.sdk.trace.sampling import TraceIdRatioBased; "
        "p = TracerProvider(sampler=TraceIdRatioBased(0.5)); x = InMemorySpanExporter(); "
        "p.add_span_processor(SimpleSpanProcessor(x)); trace.set_tracer_provider(p); "
        "from telemetry import otel; otel.start(True, 't'); "
        "low, high, late = '0' * 31 + '1', 'f' * 32, '0' * 31 + '2'; "
        "otel.fire_headers(low); otel.fire_headers(high); "
        "otel.fires_published([F(trace_id=t, task_key='k', run_id=i, job_name='noop') "
        "for i, t in enumerate((low, high, late))]); "
        "print(json.dumps([[s.name, f'{s.context.trace_id:032x}', f'{s.context.span_id:016x}', s.parent, "
        "s.kind.name, s.start_time <= s.end_time, dict(s.attributes), s.instrumentation_scope.name] "
        "for s in x.get_finished_spans()]))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(REPO), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    low, late = "0" * 31 + "1", "0" * 31 + "2"

    def expected(trace_id: str, run_id: int) -> list[object]:
        attributes = {"tablebeat.task_key": "k", "tablebeat.run_id": run_id, "tablebeat.job": "noop"}
        return ["tablebeat.fire", trace_id, fire_span_id(trace_id), None, "PRODUCER", True, attributes, "tablebeat"]

    assert json.loads(done.stdout) == [expected(low, 0), expected(late, 2)]
