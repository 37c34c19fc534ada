"""Classifying database errors: an outage, a deadlock, or a mistake in the statement.

Beat and workers retry the first two and report the third; each is logged for what it is.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

#: MySQL/MariaDB: 1213 deadlock (the transaction was rolled back), 1205 lock wait timeout.
_MYSQL_DEADLOCK_CODES = frozenset({1213, 1205})
#: PostgreSQL SQLSTATEs: deadlock_detected, serialization_failure.
_PG_DEADLOCK_STATES = frozenset({"40P01", "40001"})

_OUTAGE_MARKERS = (
    "can't connect",
    "connection refused",
    "lost connection",
    "gone away",
    "database is locked",
    "server closed",
    "connection reset",
    "timed out",
    "terminating connection",
    "2013",
    "2006",
    "2003",
)


def driver_error(exc: BaseException) -> BaseException:
    """The DB-API exception under SQLAlchemy's wrapper (``exc`` itself when unwrapped)."""
    return getattr(exc, "orig", None) or exc


def is_database_error(exc: BaseException) -> bool:
    """An SQLAlchemy database error, or a DB-API driver error that escaped its wrapping."""
    if isinstance(exc, (OperationalError, DBAPIError)):
        return True
    return type(exc).__module__.split(".")[0] in ("pymysql", "MySQLdb", "psycopg", "psycopg2", "sqlite3") and any(
        base.__name__ in ("OperationalError", "InterfaceError") for base in type(exc).__mro__
    )


def is_deadlock(exc: BaseException) -> bool:
    """The database chose this transaction as a deadlock victim (or its lock wait timed out).

    Nothing was written; running the transaction again is the documented remedy.
    """
    orig = driver_error(exc)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_DEADLOCK_CODES:
        return True
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state in _PG_DEADLOCK_STATES


def is_outage(exc: BaseException) -> bool:
    """A connection-level failure (server down, connection dropped): worth retrying."""
    if getattr(exc, "connection_invalidated", False):
        return True
    text = str(driver_error(exc)).lower()
    return any(marker in text for marker in _OUTAGE_MARKERS)


def describe(exc: BaseException) -> str:
    """One short phrase for a log line: ``deadlock (1213, ...)`` or the driver's message."""
    orig = driver_error(exc)
    return f"deadlock: {orig}" if is_deadlock(exc) else str(orig)
