"""``TABLEBEAT_LOG_FILE`` / ``TABLEBEAT_LOG_LEVEL`` (or a profile's ``[logger]`` table) for beat and workers.

The log file gets every line the console gets (same format, task_key and trace_id on each line of a
run); it is reopened when rotated away (``WatchedFileHandler``), so logrotate needs no copytruncate.
The level, when set, overrides ``-l``.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path
from typing import Any

from celery import signals

from conf.celery import settings_of
from telemetry.logs import JsonFormatter
from workers.tracing import TraceLogFilter


def file_handler(path: str, fmt: str | None, json_lines: bool) -> logging.Handler:
    """A handler appending to ``path`` (its folder created), formatted like the console."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(fmt))
    handler.addFilter(TraceLogFilter())
    return handler


@signals.after_setup_logger.connect
def _log_to_file(logger: logging.Logger | None = None, format: str | None = None, **_: Any) -> None:
    from workers.celery_app import app

    if logger is None:
        return
    settings = settings_of(app.conf)
    if settings.log_level:
        logger.setLevel(settings.log_level)
    path = settings.log_file
    if path and not any(getattr(h, "baseFilename", None) == str(Path(path).resolve()) for h in logger.handlers):
        logger.addHandler(file_handler(path, format, settings.log_format == "json"))
