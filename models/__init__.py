"""tablebeat's tables (SQLAlchemy Core, ``models.tables``), their ORM models, and engine setup.

The ORM models are imported on first use (PEP 562): beat and the workers build their statements
from ``models.tables`` and never load ``sqlalchemy.orm`` (5-6 MiB and ~0.1 s of a beat's start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from models.engine import database_url, make_engine, make_sessionmaker
from models.states import FINAL_STATUSES, RunStatus, TaskStatus, TriggerKind
from models.tables import CONFIG_COLUMNS
from models.types import UTCDateTime

if TYPE_CHECKING:
    from models.alerts import AlertState
    from models.base import Base
    from models.beats import BeatNode, ScheduleCursor
    from models.console import ConsoleSession, LoginFailure
    from models.execution import ExecuteTask
    from models.schedule import Task, TaskChange
    from models.workers import WorkerHeartbeat

#: ORM name -> its module.  They are imported together when one is first asked for, so that
#: ``Base.metadata`` holds every table and every mapper is defined, as before.
_ORM = {
    "AlertState": "models.alerts",
    "Base": "models.base",
    "BeatNode": "models.beats",
    "ScheduleCursor": "models.beats",
    "ConsoleSession": "models.console",
    "LoginFailure": "models.console",
    "ExecuteTask": "models.execution",
    "Task": "models.schedule",
    "TaskChange": "models.schedule",
    "WorkerHeartbeat": "models.workers",
}


def __getattr__(name: str) -> Any:
    if name not in _ORM:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    for orm_name, module in _ORM.items():
        globals()[orm_name] = getattr(importlib.import_module(module), orm_name)
    return globals()[name]


__all__ = [
    "AlertState",
    "Base",
    "BeatNode",
    "CONFIG_COLUMNS",
    "ConsoleSession",
    "ExecuteTask",
    "FINAL_STATUSES",
    "LoginFailure",
    "RunStatus",
    "ScheduleCursor",
    "Task",
    "TaskChange",
    "TaskStatus",
    "TriggerKind",
    "UTCDateTime",
    "WorkerHeartbeat",
    "database_url",
    "make_engine",
    "make_sessionmaker",
]
