"""How long the console's jobs page takes with 100,000 tasks: ``python -m bench.console_page``.

Seeds a dedicated MariaDB database (``tablebeat_console_bench``, multi-row INSERTs: 100,000
tasks of mixed triggers and statuses, and one run per task so every row has a "last run"),
serves ``tablebeat api`` with uvicorn in a subprocess, and times ``GET /`` with httpx 10 times
(after one warm-up request), plus a few filtered and deep pages. Prints the medians.

The promise (issue 5): the jobs page loads in under 1 s on this data set.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

REPO = Path(__file__).resolve().parent.parent
DATABASE = "tablebeat_console_bench"
ADMIN_URL = os.environ.get("TABLEBEAT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
TOKEN = "console-bench-token"
BATCH = 5000
#: (trigger, spec) of seeded rows, cycled.
SCHEDULES = (("interval", "300"), ("cron", "*/5 * * * *"), ("cron", "0 9 * * 1-5"), ("interval", "3600"))
CASES = {
    "GET / (sort by next fire, page 1)": "/",
    "GET /?status=error": "/?status=error",
    "GET /?q=billing (text filter)": "/?q=billing",
    "GET /?sort=key&page=1000": "/?sort=key&page=1000",
    "GET /?page=1500 (deep page by next fire)": "/?page=1500",
    "GET /fragments/jobs (the 1 s poll)": "/fragments/jobs",
}


def bench_url() -> str:
    return (
        make_url(ADMIN_URL)
        .set(database=DATABASE)
        .update_query_dict({"charset": "utf8mb4"})
        .render_as_string(hide_password=False)
    )


def seed(rows: int) -> None:
    """(Re)create the bench database with ``rows`` tasks and one run each."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        conn.exec_driver_sql(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4")
    admin.dispose()
    from models.migrate import upgrade

    upgrade(bench_url())
    engine = create_engine(bench_url())
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rng = random.Random(5)
    words = ("billing", "report", "sync", "cleanup", "export", "mailer", "metrics", "backup")
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        batch = []
        for i in range(rows):
            trigger, spec = SCHEDULES[i % len(SCHEDULES)]
            roll = rng.random()
            status, valid, error = "ready", 1, None
            if roll < 0.05:
                status, valid = "paused", 0
            elif roll < 0.06:
                status, error = "error", "spec: cron field 'minute' value 61 is out of range 0-59"
            nxt = now + timedelta(seconds=rng.randint(1, 86400)) if status == "ready" else None
            batch.append(
                (
                    f"{words[i % len(words)]}-{i:06d}",
                    f"{words[(i * 7) % len(words)]} job {i}",
                    "noop",
                    trigger,
                    spec,
                    "1,2",
                    "{}",
                    valid,
                    status,
                    "{}",
                    now,
                    now,
                    nxt,
                    now - timedelta(minutes=5),
                    error,
                )
            )
            if len(batch) == BATCH:
                _insert_tasks(cur, batch)
                raw.commit()
                batch = []
        if batch:
            _insert_tasks(cur, batch)
            raw.commit()
        cur.execute("SELECT MIN(id), MAX(id) FROM task")
        low, high = cur.fetchone()
        runs = []
        for task_id in range(low, high + 1):
            at = now - timedelta(minutes=5)
            outcome = "failed" if task_id % 17 == 0 else "success"
            runs.append((task_id, outcome, "{}", f"trace-{task_id}", at, at, at, at, at + timedelta(seconds=1), 1))
            if len(runs) == BATCH:
                _insert_runs(cur, runs)
                raw.commit()
                runs = []
        if runs:
            _insert_runs(cur, runs)
            raw.commit()
        cur.execute("ANALYZE TABLE task, execute_task")
        cur.fetchall()
    finally:
        raw.close()
        engine.dispose()
    print(f"seeded {rows:,} tasks and {rows:,} runs in {time.perf_counter() - started:.1f} s")


def _insert_tasks(cur, batch) -> None:
    cur.executemany(
        "INSERT INTO task (task_key, `desc`, execute_func, `trigger`, spec, args, kwargs, is_valid, status, extra,"
        " create_at, update_at, next_run_at, last_run_at, last_error)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        batch,
    )


def _insert_runs(cur, batch) -> None:
    cur.executemany(
        "INSERT INTO execute_task (task_id, status, extra, trace_id, create_at, update_at, scheduled_at,"
        " started_at, finished_at, attempt) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        batch,
    )


def task_count() -> int:
    """Tasks already seeded, or 0 when the bench database or its table does not exist yet."""
    engine = create_engine(bench_url())
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text("SELECT COUNT(*) FROM task")) or 0)
    except SQLAlchemyError:
        return 0
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(repeats: int) -> dict[str, float]:
    """Median seconds of each case, against ``tablebeat api`` served by uvicorn in a subprocess."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_")}
    env.update(
        TABLEBEAT_DATABASE_URL=bench_url(),
        TABLEBEAT_BROKER_URL=os.environ.get("TABLEBEAT_BENCH_BROKER_URL", "redis://127.0.0.1:6379/15"),
        TABLEBEAT_API_TOKEN=TOKEN,
        PYTHONPATH=str(REPO),
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=str(REPO),
        start_new_session=True,
    )
    medians: dict[str, float] = {}
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the API server did not start") from None
                    time.sleep(0.2)
            for name, path in CASES.items():
                client.get(path).raise_for_status()  # warm-up: connections, templates, caches
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    response = client.get(path)
                    times.append(time.perf_counter() - started)
                    response.raise_for_status()
                medians[name] = statistics.median(times)
                print(
                    f"{name:45s} median {medians[name] * 1000:7.1f} ms  (min {min(times) * 1000:.1f}, "
                    f"max {max(times) * 1000:.1f}, n={repeats}, {len(response.content):,} bytes)"
                )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--reseed", action="store_true", help="seed even if the database has the rows already")
    args = parser.parse_args()
    if args.reseed or task_count() != args.rows:
        seed(args.rows)
    medians = measure(args.repeats)
    verdict = "PASS" if medians["GET / (sort by next fire, page 1)"] < 1.0 else "FAIL"
    print(
        f"jobs page with {args.rows:,} tasks: median {medians['GET / (sort by next fire, page 1)'] * 1000:.1f} ms "
        f"({verdict}: the limit is 1 s)"
    )


if __name__ == "__main__":
    main()
