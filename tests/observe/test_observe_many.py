"""``exposition.observe_many`` counts a batch per bucket: the same samples as one ``observe`` per value."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import multiprocess as mp

from scheduler.metrics import LATENESS_BUCKETS
from telemetry import exposition


@pytest.fixture(scope="module")
def multiprocess_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("prom")
    before = os.environ.get(exposition.MULTIPROC_ENV)
    os.environ[exposition.MULTIPROC_ENV] = str(folder)
    exposition._refresh_value_class()  # multiprocess values, as beat uses them
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop(exposition.MULTIPROC_ENV, None)
        else:
            os.environ[exposition.MULTIPROC_ENV] = before
        exposition._refresh_value_class()


def _samples(folder: Path, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    mp.MultiProcessCollector(registry, path=str(folder))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        if family.name == name
        for s in family.samples
    }


_counter = iter(range(10**6))
values = st.lists(
    st.one_of(
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
        st.sampled_from(LATENESS_BUCKETS),  # a value on a bound belongs to that bound's bucket
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(batch=values)
def test_observe_many_matches_one_observe_per_value(multiprocess_dir: Path, batch: list[float]) -> None:
    n = next(_counter)
    one = Histogram(f"one_{n}", "d", ("task",), registry=None, buckets=LATENESS_BUCKETS).labels("")
    many = Histogram(f"many_{n}", "d", ("task",), registry=None, buckets=LATENESS_BUCKETS).labels("")
    for value in batch:
        one.observe(value)
    exposition.observe_many(many, batch)
    expected = {(k[0].replace("one_", "many_"), k[1]): v for k, v in _samples(multiprocess_dir, f"one_{n}").items()}
    found = _samples(multiprocess_dir, f"many_{n}")
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def test_the_per_bucket_path_is_taken_with_this_prometheus_client(multiprocess_dir: Path) -> None:
    """The fallback is correct but slow: know when prometheus-client's histogram changes shape."""
    child = Histogram("shape", "d", registry=None, buckets=LATENESS_BUCKETS)
    assert len(child._upper_bounds) == len(child._buckets) == len(LATENESS_BUCKETS) + 1
    assert hasattr(child._sum, "inc")
