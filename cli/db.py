"""``tablebeat db``: schema management."""

from __future__ import annotations

import typer
from rich.console import Console

db_app = typer.Typer(help="Create or upgrade the tablebeat schema.", no_args_is_help=True)
console = Console()


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
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    run_upgrade(target, revision)
    console.print(f"database at revision [bold]{current_revision(target)}[/bold] ({_redact(target)})")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
