"""``TABLEBEAT_LOG_FORMAT=json``: one JSON object per log line, for beat, workers and the API.

Every object has ``ts``, ``level``, ``logger``, ``process``, ``message``, and ``task_key``,
``trace_id`` and ``run_id`` (null outside a run); ``exc`` holds a traceback when there is one.
The run fields come from the record (the trace filter of ``workers.tracing`` or a logging
call's ``extra``), so a log pipeline can group every line of a run by ``trace_id``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

#: Loggers the API server writes through (uvicorn's own handlers do not propagate to the root).
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_UNSET = ("-", "", None)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "message": record.getMessage(),
            "task_key": _field(record, "task_key"),
            "trace_id": _field(record, "trace_id"),
            "run_id": _field(record, "run_id"),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _field(record: logging.LogRecord, name: str) -> Any:
    value = getattr(record, name, None)
    return None if value in _UNSET else value


def use_json(logger: logging.Logger) -> None:
    """Give every handler of ``logger`` the JSON formatter."""
    for handler in logger.handlers:
        if not isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(JsonFormatter())


def configure_server(log_format: str) -> None:
    """JSON for the API server's loggers (root and uvicorn's) when ``log_format`` is ``json``."""
    if log_format != "json":
        return
    for name in ("", *SERVER_LOGGERS):
        use_json(logging.getLogger(name))


def uvicorn_log_config() -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn whose every line is JSON (``uvicorn.run(log_config=...)``)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {name: {"handlers": ["default"], "level": "INFO", "propagate": False} for name in SERVER_LOGGERS},
    }
