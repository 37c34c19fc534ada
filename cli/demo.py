"""``tablebeat demo``: beat + worker on the embedded defaults, with example jobs firing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from cli.output import console

#: (task_key, desc, execute_func, trigger, spec, args)
EXAMPLE_ROWS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("test_interval", "测试interval任务: every 5 s", "test_interval", "interval", "5", "1,2,3"),
    (
        "test_cron",
        "测试cron任务: every 10 s by cron (6th field = seconds)",
        "test_cron",
        "cron",
        "* * * * * */10",
        '"guess","hello"',
    ),
    ("test_async", "an async def job every 15 s", "test_async", "interval", "15s", ""),
    ("always_fails", "fails every 20 s, to show a failed run", "always_fails", "interval", "20s", "42"),
)


#: Celery's own logs (INFO lines, tracebacks) go here, so the terminal shows one line per run.
DEFAULT_LOG_FILE = "tablebeat-demo.log"


def seed_examples() -> None:
    """Insert the example rows (and a date job 15 s from now) if they are missing."""
    from models import Task, make_engine

    engine = make_engine()
    run_at = (datetime.now(UTC) + timedelta(seconds=15)).strftime("%Y-%m-%d %H:%M:%S")
    rows = (
        *EXAMPLE_ROWS,
        ("test_date", "测试date任务: once, 15 s after the demo starts", "test_date", "date", run_at, ""),
    )
    with engine.begin() as conn:
        existing = set(conn.scalars(select(Task.task_key)))
        for key, desc, func, trigger, spec, args in rows:
            if key in existing:
                continue
            conn.execute(
                Task.__table__.insert().values(
                    task_key=key,
                    desc=desc,
                    execute_func=func,
                    trigger=trigger,
                    spec=spec,
                    args=args,
                    is_valid=1,
                    status="ready",
                    extra="{}",
                    kwargs="{}",
                )
            )
    engine.dispose()


def demo(
    seconds: float = typer.Option(0, help="Stop after this many seconds (0 = until Ctrl-C)."),
    log_to: str = typer.Option(DEFAULT_LOG_FILE, "--log-file", help="Where beat's and the worker's own logs go."),
) -> None:
    """Upgrade the database, add example jobs, and run beat + worker, printing one line per finished run."""
    from models.engine import database_url
    from models.migrate import upgrade

    log_file = Path(log_to)
    upgrade(database_url())
    seed_examples()
    out = console()
    out.print(f"[bold]tablebeat demo[/bold]: database {escape(database_url())}")
    out.print(f"beat and worker logs: {escape(str(log_file.resolve()))}")
    out.print("Edit the [bold]task[/bold] table while this runs; Ctrl-C stops.")
    # ``kill``, a closed terminal or a stopped container must stop beat + worker too, as Ctrl-C does;
    # Python's default for these signals ends the demo at once and leaves them running. Ctrl-C gets
    # the same handler: a parent may have left SIGINT ignored, which Python then never turns into
    # KeyboardInterrupt.
    _stop_requested.clear()
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _interrupt)
    with log_file.open("ab") as logs:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers",
                "worker",
                "-B",
                "-l",
                "info",
                "-c",
                "2",
                "--without-mingle",
                "--without-gossip",
            ],
            env={**os.environ},
            stdin=subprocess.DEVNULL,
            stdout=logs,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + seconds if seconds else None
        try:
            _print_runs(worker, deadline, out)
        except KeyboardInterrupt:
            pass
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
    if worker.returncode not in (0, -signal.SIGTERM, None):
        out.print(f"[red]beat/worker exited with code {worker.returncode}[/red]; see {escape(str(log_file))}")


#: Set by a stop signal. The loop checks it too: a KeyboardInterrupt raised while a library is
#: cleaning up (a finalizer, a pool callback) can be swallowed there, and the demo must still stop.
_stop_requested = threading.Event()


def _interrupt(signum: int, _frame: Any) -> None:
    _stop_requested.set()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_line(row: Any) -> str:
    """One line for a finished run: outcome, task, instant, duration, trace ID, and result or error's last line."""
    colour = {"success": "green", "failed": "red", "lost": "red"}.get(row.status, "yellow")
    if row.error:
        detail = row.error.strip().splitlines()[-1] if row.error.strip() else ""
    else:
        detail = "" if row.result is None else str(row.result)
    took = "" if row.duration_seconds is None else f" {row.duration_seconds * 1000:.0f} ms"
    return (
        f"[{colour}]{row.status:<8}[/{colour}] run {row.id:>5} {escape(str(row.task_key)):<14} "
        f"scheduled {row.scheduled_at:%H:%M:%S}{took:>8}  trace {row.trace_id}  {escape(detail)}"
    ).rstrip()


def _print_runs(worker: subprocess.Popen[bytes], deadline: float | None, out: Console) -> None:
    from models import ExecuteTask, Task, make_engine
    from models.execution import FINAL_STATUSES

    final = [status.value for status in FINAL_STATUSES]
    engine = make_engine()
    last_id = 0  # runs finish out of order: every run above this id not yet shown is looked at again
    shown: set[int] = set()
    while not _stop_requested.is_set() and worker.poll() is None and (deadline is None or time.monotonic() < deadline):
        time.sleep(1)
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    ExecuteTask.id,
                    ExecuteTask.status,
                    ExecuteTask.trace_id,
                    ExecuteTask.scheduled_at,
                    ExecuteTask.started_at,
                    ExecuteTask.finished_at,
                    ExecuteTask.result,
                    ExecuteTask.error,
                    Task.task_key,
                )
                .join(Task, Task.id == ExecuteTask.task_id, isouter=True)
                .where(ExecuteTask.id > last_id, ExecuteTask.status.in_(final))
                .order_by(ExecuteTask.id)
                .limit(500)
            ).all()
        for row in rows:
            if row.id in shown:
                continue
            shown.add(row.id)
            out.print(run_line(_with_duration(row)), soft_wrap=True)
        last_id = _unfinished_floor(engine, last_id, rows)
        shown = {run_id for run_id in shown if run_id > last_id}
    engine.dispose()


def _with_duration(row: Any) -> Any:
    seconds = None
    if row.started_at is not None and row.finished_at is not None:
        seconds = (row.finished_at - row.started_at).total_seconds()
    return SimpleNamespace(**row._asdict(), duration_seconds=seconds)


def _unfinished_floor(engine: Any, last_id: int, rows: Any) -> int:
    """The id below the oldest run still under way, so finished runs are not read again and again."""
    from sqlalchemy import func

    from models import ExecuteTask

    with engine.connect() as conn:
        oldest_open = conn.scalar(
            select(func.min(ExecuteTask.id)).where(
                ExecuteTask.id > last_id, ExecuteTask.status.in_(("pending", "running", "retrying"))
            )
        )
    if oldest_open is not None:
        return oldest_open - 1
    return max([last_id, *(row.id for row in rows)])
