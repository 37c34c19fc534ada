"""``tablebeat prune``: delete old finished runs from ``execute_task`` in batches."""

from __future__ import annotations

import typer

from cli.tasks import fail, open_service, stdout
from service.fields import parse_duration
from service.tasks import PRUNE_BATCH_ROWS


def prune(
    older_than: str = typer.Option(..., "--older-than", help="Age of the runs to delete: 30d, 12h, 90m, 2w."),
    batch_size: int = typer.Option(PRUNE_BATCH_ROWS, "--batch-size", help="Rows deleted per transaction."),
) -> None:
    """Delete finished runs (success, failed, skipped, lost, expired) older than --older-than.

    Runs still pending, running or retrying are never deleted.
    """
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise fail(f"--older-than: {exc}", 2) from None
    with open_service() as service:
        deleted = service.prune_runs(age, batch_rows=batch_size)
    stdout().print(f"deleted {deleted} finished run(s) older than {older_than}")
