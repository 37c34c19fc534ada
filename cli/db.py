"""``tablebeat db``: schema management."""

from __future__ import annotations

import typer
from rich.markup import escape

from cli.output import console

db_app = typer.Typer(help="Create or upgrade the tablebeat schema.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(
    url: str = typer.Option(None, "--url", help="SQLAlchemy URL; default TABLEBEAT_DATABASE_URL or the SQLite file."),
    revision: str = typer.Option("head", help="Alembic revision to upgrade to."),
) -> None:
    """Create the tables, or upgrade them in place keeping every row."""
    from models.engine import database_url, parse_database_url
    from models.migrate import current_revision
    from models.migrate import upgrade as run_upgrade

    try:
        target = url or database_url()
        parse_database_url(target)
    except ValueError as exc:
        console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    before = current_revision(target)
    run_upgrade(target, revision)
    after = current_revision(target)
    where = escape(_redact(target))
    if before == after:
        console().print(f"database {where} already at revision [bold]{after}[/bold]")
    else:
        console().print(f"database {where} upgraded from revision {before or '(empty)'} to [bold]{after}[/bold]")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("import")
def import_legacy(
    url: str = typer.Option(None, "--url", help="SQLAlchemy URL; default TABLEBEAT_DATABASE_URL or the SQLite file."),
    source: str = typer.Option(None, "--from", help="Database holding the old tables (default: the same one)."),
    timezone: str = typer.Option(
        None,
        "--timezone",
        help="Zone the old system wrote its datetimes and ran its triggers in (default TABLEBEAT_TIMEZONE).",
    ),
) -> None:
    """Copy 003's task_manage + task_execution_log and 004's sys_scheduler_task into tablebeat's tables.

    Rows already copied are skipped, so running it twice copies nothing twice.
    """
    import os

    from models.engine import database_url, make_engine, parse_database_url
    from models.migrate import is_up_to_date
    from service.legacy_import import import_legacy as run_import

    try:
        target = url or database_url()
        parse_database_url(target)
        if source:
            parse_database_url(source)
    except ValueError as exc:
        console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if not is_up_to_date(target):
        console(stderr=True).print(
            "[red]error:[/red] the tablebeat schema is missing or old; run 'tablebeat db upgrade' first"
        )
        raise typer.Exit(2)
    engine = make_engine(target)
    source_engine = make_engine(source) if source else None
    try:
        report = run_import(engine, source_engine, timezone or os.environ.get("TABLEBEAT_TIMEZONE") or "UTC")
    finally:
        engine.dispose()
        if source_engine is not None:
            source_engine.dispose()
    out = console()
    tables = sorted(set(report.copied) | set(report.skipped))
    if not tables:
        out.print("no task_manage, task_execution_log or sys_scheduler_task table found; nothing to import")
    for table in tables:
        out.print(f"{table}: {report.copied.get(table, 0)} copied, {report.skipped.get(table, 0)} already there")
    for problem in report.problems:
        out.print(f"[yellow]warning:[/yellow] {escape(problem)}")
