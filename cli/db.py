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
