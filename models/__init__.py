"""SQLAlchemy models of tablebeat's tables, and engine setup."""

from models.alerts import AlertState
from models.base import Base, UTCDateTime
from models.beats import BeatNode, ScheduleCursor
from models.console import ConsoleSession, LoginFailure
from models.engine import database_url, make_engine, make_sessionmaker
from models.execution import FINAL_STATUSES, ExecuteTask, RunStatus
from models.schedule import CONFIG_COLUMNS, Task, TaskChange, TaskStatus, TriggerKind
from models.workers import WorkerHeartbeat

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
