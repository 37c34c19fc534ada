"""Trace IDs are fully random, so OpenTelemetry's ratio samplers keep the ratio asked for."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import context
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from protocol.trace import fire_span_id, new_trace_id, parse_traceparent, traceparent


def test_trace_ids_are_32_hex_with_a_nonzero_span_half() -> None:
    ids = {new_trace_id() for _ in range(2000)}
    assert len(ids) == 2000
    for trace_id in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
        assert fire_span_id(trace_id) != "0" * 16
        assert parse_traceparent(traceparent(trace_id, fire_span_id(trace_id))) == (trace_id, trace_id[16:], True)


@settings(max_examples=8, deadline=None)
@given(ratio=st.sampled_from([0.01, 0.05, 0.1, 0.25, 0.5, 0.9]))
def test_a_ratio_sampler_keeps_about_its_ratio_of_runs(ratio: float) -> None:
    """UUID4 hex ids (the earlier scheme) were never kept below one half: their low 64 bits start with 0b10."""
    sampler = ParentBased(TraceIdRatioBased(ratio))
    empty = context.Context()
    n = 20_000
    kept = sum(
        sampler.should_sample(empty, int(new_trace_id(), 16), "tablebeat.fire").decision.is_sampled() for _ in range(n)
    )
    expected = n * ratio
    spread = 6 * (n * ratio * (1 - ratio)) ** 0.5  # six standard deviations: never a flake
    assert abs(kept - expected) <= spread, (kept, expected)
