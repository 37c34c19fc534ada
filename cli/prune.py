"""``tablebeat prune``: delete old finished runs from ``execute_task`` in batches."""

from __future__ import annotations

import re
from datetime import timedelta

import typer

from cli.tasks import fail, open_service, stdout
from service.tasks import PRUNE_BATCH_ROWS, PRUNE_MAX_WEEKS

_UNIT_S = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:\s*[0-9]+\s*[wdhms])+\s*")
_PART = re.compile(r"([0-9]+)\s*([wdhms])")


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``1d12h``, ``2w`` -> timedelta. :raises ValueError:"""
    if not _DURATION.fullmatch(text or ""):
        raise ValueError(f"cannot read {text!r}; use a number and a unit (w, d, h, m, s) such as 30d, 12h or 90m")
    parts = _PART.findall(text)
    longest = PRUNE_MAX_WEEKS * _UNIT_S["w"]
    # More digits than the longest age has seconds: refused before int() meets thousands of digits.
    if any(len(amount.lstrip("0")) > len(str(longest)) for amount, _ in parts):
        raise ValueError(f"{text!r} is longer than the maximum of {PRUNE_MAX_WEEKS}w (about 1000 years)")
    seconds = sum(int(amount) * _UNIT_S[unit] for amount, unit in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    if seconds > longest:
        raise ValueError(f"{text!r} is longer than the maximum of {PRUNE_MAX_WEEKS}w (about 1000 years)")
    return timedelta(seconds=seconds)


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
