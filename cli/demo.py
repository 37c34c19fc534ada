"""``tablebeat demo``: beat + worker on the embedded defaults, with example jobs firing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

console = Console()

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
) -> None:
    """Upgrade the database, add example jobs, and run beat + worker, printing every run."""
    from models.engine import database_url
    from models.migrate import upgrade

    upgrade(database_url())
    seed_examples()
    console.print(f"[bold]tablebeat demo[/bold]: database {database_url()}")
    console.print("Edit the [bold]task[/bold] table while this runs; Ctrl-C stops.")
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
    )
    deadline = time.monotonic() + seconds if seconds else None
    try:
        _print_runs(worker, deadline)
    except KeyboardInterrupt:
        pass
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()


def _print_runs(worker: subprocess.Popen[bytes], deadline: float | None) -> None:
    from models import ExecuteTask, Task, make_engine

    engine = make_engine()
    shown: dict[int, str] = {}
    while worker.poll() is None and (deadline is None or time.monotonic() < deadline):
        time.sleep(1)
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    ExecuteTask.id,
                    ExecuteTask.status,
                    ExecuteTask.trace_id,
                    ExecuteTask.scheduled_at,
                    ExecuteTask.result,
                    ExecuteTask.error,
                    Task.task_key,
                )
                .join(Task, Task.id == ExecuteTask.task_id, isouter=True)
                .order_by(ExecuteTask.id.desc())
                .limit(50)
            ).all()
        for row in reversed(rows):
            if shown.get(row.id) == row.status or row.status in ("pending", "running"):
                continue
            shown[row.id] = row.status
            colour = {"success": "green", "failed": "red"}.get(row.status, "yellow")
            detail = row.result if row.status != "failed" else (row.error or "").strip().splitlines()[-1:]
            console.print(
                f"[{colour}]run {row.id:>5} {row.status:<8}[/{colour}] {escape(str(row.task_key)):<14} "
                f"scheduled {row.scheduled_at:%H:%M:%S} trace {row.trace_id}  {escape(str(detail))}",
                soft_wrap=True,
            )
    engine.dispose()
