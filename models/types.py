"""Column types and SQL clock functions shared by every table (SQLAlchemy Core: no ORM import)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The current instant, UTC-aware: what every timestamp column holds (the one home of this helper)."""
    return datetime.now(UTC)


def stored_utc(value: datetime, dialect_name: str) -> datetime:
    """An aware instant as a ``UTCDateTime`` column stores it: naive UTC, or aware UTC on PostgreSQL.

    :raises ValueError: for a naive value (its zone is unknown).
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} given; tablebeat stores aware UTC times")
    value = value.astimezone(UTC)
    return value if dialect_name == "postgresql" else value.replace(tzinfo=None)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware.

    MySQL and SQLite have no zone-carrying type, so values are stored naive in UTC
    and re-tagged on the way out; PostgreSQL keeps ``timestamptz``.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=True))
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else stored_utc(value, dialect.name)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class clock_now(FunctionElement[datetime]):  # lower case: reads like the SQL function it renders
    """The database clock at the moment the statement touches the row (not its start).

    Used where the order of two writes must show in their timestamps: a run that takes a
    slot freed by another run's finish is stamped after that finish, whatever the
    workers' own clocks or scheduling did.
    """

    type = UTCDateTime()
    inherit_cache = True


@compiles(clock_now, "mysql")
@compiles(clock_now, "mariadb")
def _clock_now_mysql(element: Any, compiler: Any, **kw: Any) -> str:
    return "SYSDATE(6)"  # unlike NOW(6), evaluated when executed (after any lock wait)


@compiles(clock_now, "postgresql")
def _clock_now_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    return "clock_timestamp()"


@compiles(clock_now)
def _clock_now_default(element: Any, compiler: Any, **kw: Any) -> str:
    # SQLite: text in the format SQLAlchemy's DateTime reads back (microseconds padded).
    return "(strftime('%Y-%m-%d %H:%M:%f','now') || '000')"
