"""Running one peer at a time on the same N and printing the side-by-side table."""

from __future__ import annotations

import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import measure
from bench.compare.peers import PEERS, Peer
from bench.env import REPO, BenchEnv

#: Celery's beat logs this (debug) after every tick, whatever the scheduler: the first one = started.
FIRST_TICK = "beat: Waking up"
BURST = 1000
#: How long after the burst instant all its messages are waited for.
BURST_WAIT_S = 120.0
#: Columns, how each is read, and whether lower is better.
COLUMNS = (
    ("start_s", "start -> first tick", "s"),
    ("peak_rss_mb", "peak RSS", "MiB"),
    ("idle_cpu_s_per_min", "idle CPU", "CPU-s/min"),
    ("edit_pickup_median_s", "edit pickup, median", "s"),
    ("burst_first_s", "1,000-fire burst: first message", "s"),
    ("burst_all_s", "1,000-fire burst: all messages", "s"),
)


class BeatProcess:
    """``celery <argv>`` in its own process group, its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        """``argv`` after ``python -m``: the module (``celery`` or ``scheduler``) and its arguments."""
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *argv],
            env=env,
            cwd=str(log_path.parent),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(self, needle: str, timeout: float) -> float | None:
        """Seconds from spawn until ``needle`` is in the log (None: not within ``timeout`` or exited)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_path.read_text(errors="replace"):
                return time.perf_counter() - self.started
            if self.proc.poll() is not None:
                return None
            time.sleep(0.01)
        return None

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def wait_llen(bench: BenchEnv, at_least: int, timeout: float) -> float | None:
    """Epoch time when the broker's default queue first held ``at_least`` messages (polled every 2 ms)."""
    deadline = time.monotonic() + timeout
    client = bench.new_redis()
    try:
        while time.monotonic() < deadline:
            if measure.llen(client) >= at_least:
                return time.time()
            time.sleep(0.002)
    finally:
        client.close()
    return None


def run_peer(
    peer: Peer,
    bench: BenchEnv,
    rows: int,
    *,
    idle_s: float,
    edits: int,
    log: Callable[[str], None],
    burst: int = BURST,
    warmup_s: float = 3.0,
    start_budget_s: float | None = None,
) -> dict[str, Any]:
    """Seed ``rows`` tasks (1,000 of them firing at one instant), start the peer's beat, measure."""
    out: dict[str, Any] = {"peer": peer.label, "rows": rows, "edit_path": peer.edit_path}
    bench.recreate_database()
    bench.flush_broker()
    peer.prepare(bench)
    burst = min(burst, rows // 2)
    start_budget = start_budget_s or 20.0 + peer.start_s_per_1000 * rows / 1000.0
    edit_budget = edits * 12.0
    seeded = time.perf_counter()
    burst_at = datetime.fromtimestamp(
        math.ceil(time.time() + 2 + warmup_s + start_budget + idle_s + edit_budget + rows * 20e-6), UTC
    )  # seeding 1,000,000 rows takes ~20 s; all phases end before the burst
    peer.seed(bench, rows - burst, burst, burst_at)
    out["seed_s"] = round(time.perf_counter() - seeded, 1)
    log(f"  {peer.name}: seeded {rows:,} tasks in {out['seed_s']} s; burst at {burst_at:%H:%M:%S}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLEBEAT_", "BENCH_", "DJANGO_"))}
    env.update(peer.env(bench))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    log_path = bench.log_dir / f"compare-{peer.name}-{rows}-{int(time.time())}.log"
    bench.log_dir.mkdir(parents=True, exist_ok=True)
    beat = BeatProcess(peer.beat_argv(), env, log_path)
    try:
        started = beat.wait_for(FIRST_TICK, start_budget)
        if started is None:
            out["error"] = f"no first tick within {start_budget:.0f} s"
            out["peak_rss_mb"] = round(measure.peak_rss_mb(beat.pid), 1) if beat.proc.poll() is None else None
            return out
        out["start_s"] = round(started, 3)
        time.sleep(warmup_s)  # the first seconds after start (a first sync) are not idle
        cpu0, t0 = measure.cpu_seconds(beat.pid), time.monotonic()
        time.sleep(idle_s)
        cpu1, t1 = measure.cpu_seconds(beat.pid), time.monotonic()
        out["idle_cpu_s_per_min"] = round((cpu1 - cpu0) / (t1 - t0) * 60.0, 3)
        out["peak_rss_mb"] = round(measure.peak_rss_mb(beat.pid), 1)
        out["idle_messages"] = measure.llen(bench.redis)
        pickups: list[float] = []
        for i in range(edits):
            before = measure.llen(bench.redis)
            t_edit = time.time()
            peer.make_due(bench, 10 + i * max((rows - burst) // max(edits, 1), 1) % max(rows - burst, 1))
            got = wait_llen(bench, before + 1, 30.0)
            if got is None:
                out.setdefault("edit_misses", 0)
                out["edit_misses"] += 1
                continue
            pickups.append(got - t_edit)
            # A random pause, as T3: an edit right after a pickup would always land just after a poll.
            time.sleep(random.uniform(0.3, 1.3))
        if pickups:
            out["edit_pickup_median_s"] = round(statistics.median(pickups), 3)
            out["edit_pickup_max_s"] = round(max(pickups), 3)
        before = measure.llen(bench.redis)
        if time.time() > burst_at.timestamp() - 0.5:
            out["burst_error"] = "phases overran the burst instant"
            return out
        first = wait_llen(bench, before + 1, burst_at.timestamp() - time.time() + 60)
        last = wait_llen(bench, before + burst, burst_at.timestamp() - time.time() + BURST_WAIT_S)
        out["burst_tasks"] = burst
        if first is None:  # nothing within a minute of the instant (sqlalchemy-celery-beat at 1,000,000)
            out["burst_published"] = measure.llen(bench.redis) - before
            out["peak_rss_after_burst_mb"] = round(measure.peak_rss_mb(beat.pid), 1)
            return out
        out["burst_first_s"] = round(first - burst_at.timestamp(), 3)
        if last is not None:
            out["burst_all_s"] = round(last - burst_at.timestamp(), 3)
        else:
            out["burst_published"] = measure.llen(bench.redis) - before
        out["peak_rss_after_burst_mb"] = round(measure.peak_rss_mb(beat.pid), 1)
        return out
    finally:
        beat.stop()
        bench.flush_broker()


def ratios(results: list[dict[str, Any]]) -> dict[str, float | None]:
    """tablebeat's value / the best peer's, per column (lower is better everywhere; < 1 = ahead)."""
    ours = next((r for r in results if r["peer"].startswith("tablebeat")), None)
    out: dict[str, float | None] = {}
    for key, _label, _unit in COLUMNS:
        others = [r[key] for r in results if not r["peer"].startswith("tablebeat") and r.get(key) is not None]
        mine = None if ours is None else ours.get(key)
        if mine is None or not others:
            out[key] = None
            continue
        best = min(others)
        out[key] = round(max(mine, 0.001) / max(best, 0.001), 2)
    return out


def render(results: list[dict[str, Any]], console: Console) -> Table:
    rows = results[0]["rows"] if results else 0
    table = Table(
        title=f"tablebeat vs peers, {rows:,} tasks, one beat at a time ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)"
    )
    table.add_column("scheduler")
    burst = next((r["burst_tasks"] for r in results if r.get("burst_tasks")), BURST)
    for _key, label, unit in COLUMNS:
        table.add_column(f"{label.replace('1,000', f'{burst:,}')} ({unit})", justify="right")
    for r in results:
        cells = []
        for key, _label, _unit in COLUMNS:
            value = r.get(key)
            if key == "burst_all_s" and value is None and r.get("burst_published") is not None:
                cells.append(f"> {BURST_WAIT_S:.0f} ({r['burst_published']:,} of {r.get('burst_tasks', BURST):,})")
                continue
            cells.append("—" if value is None else f"{value:,}")
        if r.get("error"):
            cells[0] = r["error"]
        table.add_row(r["peer"], *cells)
    rel = ratios(results)
    table.add_row("tablebeat ÷ best peer", *["—" if rel[k] is None else f"{rel[k]:.2f}" for k, _l, _u in COLUMNS])
    console.print(table)
    return table


def compare(
    bench: BenchEnv,
    rows: int,
    peers: list[str],
    *,
    idle_s: float = 30.0,
    edits: int = 5,
    log: Callable[[str], None] = print,
    **options: Any,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for name in peers:
        peer = PEERS[name]()
        if not peer.installed() and name != "tablebeat":
            results.append({"peer": peer.label, "rows": rows, "error": "not installed (pip install '.[bench]')"})
            continue
        log(f"{peer.label}: {rows:,} tasks")
        try:
            results.append(run_peer(peer, bench, rows, idle_s=idle_s, edits=edits, log=log, **options))
        except Exception as exc:  # one peer failing must not lose the others' numbers
            results.append({"peer": peer.label, "rows": rows, "error": f"{type(exc).__name__}: {exc}"[:200]})
        log(f"  {results[-1]}")
    return results


def timestamp() -> str:
    return (datetime.now(UTC) - timedelta(0)).strftime("%Y%m%d-%H%M%S")
