"""Entry point of the ``tablebeat`` console script."""

from __future__ import annotations

import typer

from cli.api_cmd import api
from cli.db import db_app
from cli.demo import demo
from cli.prune import prune
from cli.tasks import task_app

app = typer.Typer(help="tablebeat: a Celery beat scheduler whose schedule is a SQL table.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.command("demo")(demo)
app.add_typer(task_app, name="task")
app.command("api")(api)
app.command("prune")(prune)

if __name__ == "__main__":
    app()
