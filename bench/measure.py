"""Measuring from outside: CPU and RSS from ``/proc``, messages in the Redis broker, MariaDB counters."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Kombu's Redis transport keeps a queue as a list named after it; Celery's default queue.
DEFAULT_QUEUE_KEY = "celery"
#: Kombu's Redis transport keeps delivered-but-unacked messages in this hash.
UNACKED_KEY = "unacked"


# --- /proc ---------------------------------------------------------------------------------


def _stat_fields(path: Path) -> list[str]:
    """The fields of a ``/proc/.../stat`` file after the command name: index 0 is field 3 (state),
    1 the parent pid, 11 and 12 utime and stime (the name may hold spaces and parentheses)."""
    text = path.read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, children: bool = True) -> float:
    """utime + stime of ``pid`` (plus waited-for children's cutime + cstime), in seconds."""
    utime, stime, cutime, cstime = (int(x) for x in _stat_fields(Path(f"/proc/{pid}/stat"))[11:15])
    ticks = utime + stime + ((cutime + cstime) if children else 0)
    return ticks / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and its live descendants (prefork pool children), in seconds."""
    total = 0.0
    for p in [pid, *descendants(pid)]:
        try:
            total += cpu_seconds(p)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    return total


def descendants(pid: int) -> list[int]:
    """Live descendant pids of ``pid`` (from ``/proc/*/stat`` parent links)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        ppid = _parent(int(entry.name))
        if ppid is not None:
            parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM`` = peak RSS, ``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (``VmHWM``) of ``pid`` in MiB."""
    return status_kb(pid, "VmHWM") / 1024.0


def find_pid(*names: str) -> int | None:
    """Pid of the first process whose ``comm`` is one of ``names`` (e.g. ``mariadbd``)."""
    return next(iter(_pids_named(*names)), None)


def mariadbd_cpu() -> float | None:
    """CPU seconds used so far by the local MariaDB/MySQL server, or None if not local."""
    pid = find_pid("mariadbd", "mysqld")
    return None if pid is None else cpu_seconds(pid, children=False)


def mariadbd_threads_cpu(tids: Sequence[int]) -> dict[int, float]:
    """CPU seconds of these mariadbd threads (one per client connection), from ``/proc/<pid>/task/<tid>``."""
    pid = find_pid("mariadbd", "mysqld")
    out: dict[int, float] = {}
    if pid is None:
        return out
    for tid in tids:
        try:
            fields = _stat_fields(Path(f"/proc/{pid}/task/{tid}/stat"))
        except OSError:
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def mariadbd_all_threads_cpu() -> dict[int, float]:
    """CPU seconds of every mariadbd thread: a baseline for threads that serve a connection later
    (the server's thread cache hands a new connection a thread that may have worked before)."""
    pid = find_pid("mariadbd", "mysqld")
    if pid is None:
        return {}
    return mariadbd_threads_cpu([int(t.name) for t in Path(f"/proc/{pid}/task").iterdir() if t.name.isdigit()])


def postgres_cpu() -> float | None:
    """CPU seconds used so far by the local PostgreSQL server, or None if not local.

    The postmaster's own CPU, its reaped children's (exited backends count there) and its live children's.
    """
    server = set(_pids_named("postgres"))
    postmaster = next((pid for pid in sorted(server) if _parent(pid) not in server), None)
    if postmaster is None:
        return None
    return cpu_seconds(postmaster, children=True) + sum(processes_cpu(descendants(postmaster)).values())


def _pids_named(*names: str) -> list[int]:
    """Pids of the processes whose ``comm`` is one of ``names``, in ``/proc`` order."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def _parent(pid: int) -> int | None:
    """Parent pid of ``pid``; None once it has exited."""
    try:
        return int(_stat_fields(Path(f"/proc/{pid}/stat"))[1])
    except OSError:
        return None


def processes_cpu(pids: Sequence[int]) -> dict[int, float]:
    """Own CPU seconds (no children) of each of ``pids`` still alive."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            out[pid] = cpu_seconds(pid, children=False)
        except (OSError, ValueError):
            continue
    return out


def backend_pids(conn: Any, database: str) -> list[int]:
    """Server process ids of every other PostgreSQL client connected to ``database``."""
    rows = conn.exec_driver_sql(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
    ).all()
    return [int(r[0]) for r in rows]


def connection_threads(conn: Any, database: str) -> dict[int, int]:
    """``connection id -> server thread id`` of every other client using ``database`` (MariaDB 10.5+)."""
    rows = conn.exec_driver_sql(
        "SELECT ID, TID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()", (database,)
    ).all()
    return {int(r[0]): int(r[1]) for r in rows if r[1] is not None}


# --- MariaDB counters ----------------------------------------------------------------------


def global_status(conn: Any, names: Sequence[str]) -> dict[str, int]:
    """``SHOW GLOBAL STATUS`` values for ``names`` (a SQLAlchemy connection)."""
    out: dict[str, int] = {}
    for name in names:
        row = conn.exec_driver_sql(f"SHOW GLOBAL STATUS LIKE '{name}'").first()
        out[name] = int(row[1]) if row else 0
    return out


# --- broker ---------------------------------------------------------------------------------


def llen(client: redis.Redis, key: str = DEFAULT_QUEUE_KEY) -> int:
    return int(client.llen(key))


def message_ids(client: redis.Redis, key: str = DEFAULT_QUEUE_KEY) -> list[dict[str, Any]]:
    """Headers of every message waiting in the queue list (task id, name, ...)."""
    out: list[dict[str, Any]] = []
    pipe_size = 2000
    total = llen(client, key)
    for start in range(0, total, pipe_size):
        for raw in client.lrange(key, start, start + pipe_size - 1):
            out.append(json.loads(raw).get("headers", {}))
    return out


class Sampler(threading.Thread):
    """Polls ``probe()`` every ``interval`` seconds in a thread, keeping ``(time.time(), value)``."""

    def __init__(self, probe: Callable[[], Any], interval: float, stop_when: Callable[[Any], bool] | None = None):
        super().__init__(daemon=True)
        self.probe = probe
        self.interval = interval
        self.stop_when = stop_when
        self.samples: list[tuple[float, Any]] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                t = time.time()
                value = self.probe()
                self.samples.append((t, value))
                if self.stop_when is not None and self.stop_when(value):
                    return
                self._halt.wait(self.interval)
        except BaseException as exc:  # reported by the case, never silently lost
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def first_time(self, predicate: Callable[[Any], bool]) -> float | None:
        """``time.time()`` of the first sample whose value satisfies ``predicate``."""
        for t, value in self.samples:
            if predicate(value):
                return t
        return None


# --- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest-rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@dataclass
class Stopwatch:
    start: float = 0.0

    def __post_init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
