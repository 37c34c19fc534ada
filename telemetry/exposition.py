"""Serving Prometheus metrics from beat and worker processes (``TABLEBEAT_METRICS_PORT``).

Metrics are kept in prometheus-client's multiprocess mode: every process writes its values
to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and the one process serving the port
adds them up. That is what makes a prefork worker's numbers right (its runs happen in pool
children, the port is served by the main process), and a beat embedded with ``-B`` is
counted by its worker's port. :func:`prepare_multiprocess_dir` runs in the process that
serves (at ``worker_init`` / ``beat_init``) before any metric is made: the metric modules
make theirs on first use.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from bisect import bisect_left
from typing import Any

logger = logging.getLogger("tablebeat.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Set by the process serving the port, for its children: "already served, do not bind again".
SERVED_BY_ENV = "TABLEBEAT_METRICS_SERVED_BY"
#: (pid, folder) of the multiprocess folder this process made, if any.
_created: tuple[int, str] | None = None


def prepare_multiprocess_dir(port: int) -> str | None:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder when metrics are on and none is given.

    Returns the folder, or None when metrics are off. An operator-given folder is used as is
    (it must be emptied between runs of a process, as prometheus-client requires).
    """
    if port <= 0:
        return None
    given = os.environ.get(MULTIPROC_ENV, "").strip()
    if given:
        os.makedirs(given, exist_ok=True)
        _refresh_value_class()
        return given
    global _created
    folder = tempfile.mkdtemp(prefix="tablebeat-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    _created = (os.getpid(), folder)
    atexit.register(remove_created)
    _refresh_value_class()
    return folder


def _refresh_value_class() -> None:
    """Metrics made from now on use multiprocess values, even if prometheus_client was imported before."""
    values: Any = sys.modules.get("prometheus_client.values")
    if values is not None:
        values.ValueClass = values.get_value_class()


def serve(port: int, address: str, role: str) -> bool:
    """Serve ``/metrics`` on ``address:port`` from a daemon thread, unless a parent process does.

    :param role: ``beat`` or ``worker``, for the log line.
    :returns: whether this process now serves the port.
    """
    if port <= 0:
        return False
    served_by = os.environ.get(SERVED_BY_ENV)
    if served_by and served_by != str(os.getpid()):
        return False  # e.g. the beat a worker embeds with -B: the worker's port counts it
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client import multiprocess as mp

    registry: Any
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry, path=folder)
    else:
        from prometheus_client import REGISTRY as registry
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        # Metrics are not worth stopping beat or a worker for: say so once and go on.
        logger.error("tablebeat: %s metrics not served on %s:%s: %s", role, address, port, exc)
        return False
    os.environ[SERVED_BY_ENV] = str(os.getpid())
    logger.info("tablebeat: %s metrics on http://%s:%s/metrics", role, address, port)
    return True


def process_exited(pid: int) -> None:
    """Drop the live gauges of a pool child that exited (its counters stay in the totals)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)


def remove_created() -> None:
    """Remove the folder :func:`prepare_multiprocess_dir` made, in the process that made it only.

    Registered with ``atexit``; children forked from that process (pool children, a ``-B``
    beat) inherit the registration but not the ownership.
    """
    global _created
    if _created is not None and _created[0] == os.getpid():
        shutil.rmtree(_created[1], ignore_errors=True)
        _created = None


# --- metric constructors: outside the default registry (the serving process reads every process's files) ---


def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
    from prometheus_client import Counter

    return Counter(name, doc, labels, registry=None)


def gauge(name: str, doc: str, labels: tuple[str, ...] = (), mode: str = "livesum") -> Any:
    """A gauge; ``mode`` is how several processes' values combine (``multiprocess_mode``)."""
    from prometheus_client import Gauge

    return Gauge(name, doc, labels, registry=None, multiprocess_mode=mode)  # type: ignore[arg-type]


def histogram(name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()) -> Any:
    from prometheus_client import Histogram

    return Histogram(name, doc, labels, registry=None, buckets=buckets)


def observe_many(child: Any, values: list[float]) -> None:
    """``child.observe(v)`` for every value of ``values``, with one write per bucket touched.

    A multiprocess value write takes a lock and writes the memory-mapped file; beat observes
    a lateness per fire, thousands per second, so a batch is counted per bucket first. Falls
    back to one ``observe`` per value if prometheus-client's histogram child changes shape
    (tests compare both ways).
    """
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            child.observe(value)
        return
    counts = [0] * len(buckets)
    for value in values:
        counts[bisect_left(bounds, value)] += 1  # the first bucket whose bound is >= value
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    total.inc(sum(values))
