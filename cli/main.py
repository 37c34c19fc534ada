"""Entry point of the ``tablebeat`` console script."""

from __future__ import annotations

import typer

from cli.db import db_app
from cli.demo import demo

app = typer.Typer(help="tablebeat: a Celery beat scheduler whose schedule is a SQL table.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.command("demo")(demo)

if __name__ == "__main__":
    app()
