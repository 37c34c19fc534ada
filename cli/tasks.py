"""``tablebeat task ...``: the REST API's operations from the command line.

Every verb calls :mod:`service.tasks`, so validation and messages match the API.
Errors go to stderr in red; the exit code is 2 for bad input and 1 when nothing matches.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.output import console
from conf.profiles import load_settings
from service.errors import ServiceError, ValidationFailed
from service.tasks import TaskService
from service.views import Page, RunView, TaskView

task_app = typer.Typer(help="Add, list, show, edit, pause, resume, run and remove tasks.", no_args_is_help=True)

#: Runs shown by ``task show``.
SHOW_LAST_RUNS = 5


def stdout() -> Console:
    return console()


def fail(message: str, exit_code: int) -> typer.Exit:
    """Print ``message`` to stderr in red and return the Exit to raise."""
    console(stderr=True).print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(exit_code)


@contextmanager
def open_service() -> Iterator[TaskService]:
    """A :class:`TaskService` from the environment; service errors become a red line and an exit code."""
    try:
        service = TaskService(load_settings())
    except ValueError as exc:  # e.g. a TABLEBEAT_DATABASE_URL that cannot be parsed
        raise fail(str(exc), 2) from None
    try:
        yield service
    except ServiceError as exc:
        raise fail(str(exc), exc.exit_code) from None
    finally:
        service.close()


# --- options shared by add and edit -------------------------------------------------------


def _json_option(name: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationFailed(name, f"is not valid JSON: {exc}") from None


def _fields(**options: Any) -> dict[str, Any]:
    """Request fields from the options actually given (None = not given)."""
    fields = {name: value for name, value in options.items() if value is not None}
    if "trigger_args" in fields:
        fields["trigger_args"] = _json_option("trigger_args", fields["trigger_args"])
    return fields


_TRIGGER = typer.Option(None, "--trigger", "-t", help="cron, interval or date.")
_SPEC = typer.Option(
    None, "--spec", "-s", help="Schedule: cron '*/5 * * * *', interval '90s', date '2030-01-01 09:00:00'."
)
_TRIGGER_ARGS = typer.Option(
    None, "--trigger-args", help="APScheduler-style JSON instead of --spec, e.g. '{\"hours\": 1}'."
)
_ARGS = typer.Option(None, "--args", help='Positional args: 1,2,3 or "a","b" or a JSON array.')
_KWARGS = typer.Option(None, "--kwargs", help='Keyword args as a JSON object, e.g. \'{"channel": "#ops"}\'.')
_DESC = typer.Option(None, "--desc", help="Description.")
_TZ = typer.Option(None, "--timezone", "--tz", help="IANA zone for cron and naive dates.")
_QUEUE = typer.Option(None, "--queue", help="Celery queue to route runs to.")
_MAX = typer.Option(None, "--max-instances", help="Most runs at once (0 = unlimited).")
_GRACE = typer.Option(None, "--misfire-grace", help="Seconds a fire may be late and still run.")
_EXPIRES = typer.Option(None, "--expires", help="Seconds after which an unstarted run expires.")
_EXTRA = typer.Option(None, "--extra", help="Free JSON metadata (an object).")


@task_app.command("add")
def add(
    task_key: str = typer.Argument(..., help="Unique name of the task."),
    execute_func: str = typer.Option(..., "--func", "-f", help="Name of a registered job."),
    trigger: str | None = _TRIGGER,
    spec: str | None = _SPEC,
    trigger_args: str | None = _TRIGGER_ARGS,
    args: str | None = _ARGS,
    kwargs: str | None = _KWARGS,
    desc: str | None = _DESC,
    timezone: str | None = _TZ,
    queue: str | None = _QUEUE,
    max_instances: int | None = _MAX,
    misfire_grace_seconds: int | None = _GRACE,
    expires_seconds: int | None = _EXPIRES,
    extra: str | None = _EXTRA,
    paused: bool = typer.Option(False, "--paused", help="Create it paused."),
) -> None:
    """Create a task; beat schedules it within a second."""
    with open_service() as service:
        fields = _fields(
            task_key=task_key,
            execute_func=execute_func,
            trigger=trigger,
            spec=spec,
            trigger_args=trigger_args,
            args=args,
            kwargs=kwargs,
            desc=desc,
            timezone=timezone,
            queue=queue,
            max_instances=max_instances,
            misfire_grace_seconds=misfire_grace_seconds,
            expires_seconds=expires_seconds,
            extra=extra,
        )
        if paused:
            fields["is_valid"] = False
        task = service.create_task(fields)
    stdout().print(f"[green]added[/green] task {task.id} [bold]{escape(task.task_key)}[/bold]: {_schedule(task)}")
    _print_fires(task)


@task_app.command("edit")
def edit(
    ref: str = typer.Argument(..., help="Task id or task_key."),
    new_key: str | None = typer.Option(None, "--key", help="Rename the task."),
    execute_func: str | None = typer.Option(None, "--func", "-f", help="Name of a registered job."),
    trigger: str | None = _TRIGGER,
    spec: str | None = _SPEC,
    trigger_args: str | None = _TRIGGER_ARGS,
    args: str | None = _ARGS,
    kwargs: str | None = _KWARGS,
    desc: str | None = _DESC,
    timezone: str | None = _TZ,
    queue: str | None = _QUEUE,
    max_instances: int | None = _MAX,
    misfire_grace_seconds: int | None = _GRACE,
    expires_seconds: int | None = _EXPIRES,
    extra: str | None = _EXTRA,
) -> None:
    """Change the given fields of a task (the others keep their values)."""
    with open_service() as service:
        fields = _fields(
            task_key=new_key,
            execute_func=execute_func,
            trigger=trigger,
            spec=spec,
            trigger_args=trigger_args,
            args=args,
            kwargs=kwargs,
            desc=desc,
            timezone=timezone,
            queue=queue,
            max_instances=max_instances,
            misfire_grace_seconds=misfire_grace_seconds,
            expires_seconds=expires_seconds,
            extra=extra,
        )
        if not fields:
            raise ValidationFailed("options", "nothing to change; give at least one option (see --help)")
        task = service.update_task(ref, fields)
    stdout().print(f"[green]updated[/green] task {task.id} [bold]{escape(task.task_key)}[/bold]: {_schedule(task)}")
    _print_fires(task)


@task_app.command("list")
def list_tasks(
    status: str | None = typer.Option(None, "--status", help="ready, doing, paused, completed or error."),
    trigger: str | None = typer.Option(None, "--trigger", "-t", help="cron, interval or date."),
    search: str | None = typer.Option(None, "--search", "-q", help="Text in task_key or desc."),
    limit: int = typer.Option(50, "--limit", help="Page size (1-1000)."),
    offset: int = typer.Option(0, "--offset", help="Rows to skip."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List tasks with their status and next fire time."""
    with open_service() as service:
        page = service.list_tasks(status=status, trigger=trigger, text_filter=search, limit=limit, offset=offset)
    if as_json:
        _print_json(page)
        return
    # A row that cannot be scheduled says why in a last column (shown when the page has one).
    reasons = [_reason(task) for task in page.items]
    table = Table(title=f"tasks {_range(page)}")
    columns = ["id", "task_key", "func", "schedule", "status", "next fire (UTC)", "last run"]
    for column in columns + (["reason"] if any(reasons) else []):
        table.add_column(column, overflow="fold")
    for task, reason in zip(page.items, reasons, strict=True):
        cells = [
            str(task.id),
            escape(task.task_key),
            escape(task.execute_func or ""),
            escape(_schedule(task)),
            _status(task),
            _when(task.next_fire_times[0] if task.next_fire_times else None),
            escape(task.last_status or "-"),
        ]
        table.add_row(*cells, *([escape(reason or "-")] if any(reasons) else []))
    stdout().print(table)


@task_app.command("show")
def show(
    ref: str = typer.Argument(..., help="Task id or task_key."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show a task, its next fire times and its last runs."""
    with open_service() as service:
        task = service.get_task(ref)
        runs = service.list_runs(task.id, limit=SHOW_LAST_RUNS)
    if as_json:
        _print_json({"task": task, "last_runs": runs.items})
        return
    table = Table(show_header=False, title=f"task {task.id}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in dataclasses.asdict(task).items():
        if name != "next_fire_times":
            table.add_row(name, escape(_cell(value)))
    out = stdout()
    out.print(table)
    _print_fires(task, out)
    out.print(_runs_table(runs, f"last runs ({runs.total} in all)"))


@task_app.command("pause")
def pause(ref: str = typer.Argument(..., help="Task id or task_key.")) -> None:
    """Stop firing the task (is_valid = 0)."""
    with open_service() as service:
        task = service.pause_task(ref)
    stdout().print(f"[yellow]paused[/yellow] task {task.id} [bold]{escape(task.task_key)}[/bold]")


@task_app.command("resume")
def resume(ref: str = typer.Argument(..., help="Task id or task_key.")) -> None:
    """Fire the task again (is_valid = 1)."""
    with open_service() as service:
        task = service.resume_task(ref)
    stdout().print(f"[green]resumed[/green] task {task.id} [bold]{escape(task.task_key)}[/bold]")
    _print_fires(task)


@task_app.command("run")
def run(ref: str = typer.Argument(..., help="Task id or task_key.")) -> None:
    """Dispatch a run of the task now; prints the run id and trace ID."""
    with open_service() as service:
        started = service.run_task(ref)
    stdout().print(
        f"[green]dispatched[/green] run {started.run_id} of [bold]{escape(started.task_key)}[/bold] "
        f"trace_id={started.trace_id}"
    )


@task_app.command("rm")
def remove(
    ref: str = typer.Argument(..., help="Task id or task_key."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a task (its past runs stay in execute_task)."""
    with open_service() as service:
        task = service.get_task(ref)
        if not yes and not typer.confirm(f"delete task {task.id} {task.task_key!r}?"):
            raise fail("not deleted", 1)
        service.delete_task(task.id)
    stdout().print(f"[red]deleted[/red] task {task.id} [bold]{escape(task.task_key)}[/bold]")


@task_app.command("logs")
def logs(
    ref: str = typer.Argument(..., help="Task id or task_key."),
    status: str | None = typer.Option(None, "--status", help="Only runs of this status (e.g. failed)."),
    limit: int = typer.Option(20, "--limit", help="Page size (1-1000)."),
    offset: int = typer.Option(0, "--offset", help="Rows to skip."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The task's runs, newest first, with trace IDs, times, results and errors."""
    with open_service() as service:
        page = service.list_runs(ref, status=status, limit=limit, offset=offset)
    if as_json:
        _print_json(page)
        return
    stdout().print(_runs_table(page, f"runs {_range(page)}"))


# --- rendering ---------------------------------------------------------------------------------


def _schedule(task: TaskView) -> str:
    zone = f" ({task.timezone})" if task.timezone else ""
    return f"{task.trigger} {task.spec}{zone}"


def _status(task: TaskView) -> str:
    colour = {"ready": "green", "doing": "cyan", "paused": "yellow", "error": "red"}.get(task.status, "white")
    return f"[{colour}]{escape(task.status)}[/{colour}]"


def _reason(task: TaskView) -> str | None:
    """Why the task is in ``error`` (``last_error``) or cannot be scheduled as it stands."""
    if task.status == "error" and task.last_error:
        return task.last_error
    return task.schedule_error


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return _when(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _range(page: Page[Any]) -> str:
    if not page.items:
        return f"(none of {page.total})"
    return f"{page.offset + 1}-{page.offset + len(page.items)} of {page.total}"


def _print_fires(task: TaskView, out: Console | None = None) -> None:
    out = out or stdout()
    if task.schedule_error:
        out.print(f"[red]cannot be scheduled:[/red] {escape(task.schedule_error)}")
    elif task.next_fire_times:
        out.print("next fire times (UTC): " + ", ".join(_when(t) for t in task.next_fire_times))
    else:
        out.print(f"no next fire time ({task.status})")


def _runs_table(page: Page[RunView], title: str) -> Table:
    table = Table(title=title)
    for column in ("run", "status", "scheduled (UTC)", "started", "finished", "seconds", "trace_id", "result / error"):
        table.add_column(column, overflow="fold")
    for run in page.items:
        colour = {"success": "green", "failed": "red", "lost": "red", "expired": "yellow", "skipped": "yellow"}.get(
            run.status, "white"
        )
        outcome = run.result or ""
        if run.error:
            outcome = run.error.strip().splitlines()[-1]
        table.add_row(
            str(run.id),
            f"[{colour}]{run.status}[/{colour}]",
            _when(run.scheduled_at),
            _when(run.started_at),
            _when(run.finished_at),
            "-" if run.duration_seconds is None else f"{run.duration_seconds:.3f}",
            run.trace_id or "-",
            escape(outcome),
        )
    return table


def _print_json(value: Any) -> None:
    def plain(item: Any) -> Any:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return {f.name: plain(getattr(item, f.name)) for f in dataclasses.fields(item)}
        if isinstance(item, dict):
            return {k: plain(v) for k, v in item.items()}
        if isinstance(item, list):
            return [plain(v) for v in item]
        if isinstance(item, datetime):
            return item.isoformat()
        return item

    typer.echo(json.dumps(plain(value), ensure_ascii=False, indent=2))
