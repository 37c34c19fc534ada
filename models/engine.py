"""Engine and session factory for the tablebeat database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from conf.profiles import load_settings
from conf.urls import parse_database_url
from models import pymysql_conversions, pymysql_tls
from models.pymysql_import import import_pymysql

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

__all__ = ["database_url", "make_engine", "make_sessionmaker", "parse_database_url"]


def database_url() -> str:
    """The configured database URL: ``TABLEBEAT_DATABASE_URL``, else the ``APP_ENV`` profile's, else SQLite.

    :raises conf.profiles.SettingsError: when the profile or the variable is invalid.
    """
    return load_settings().database_url


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """Create an engine tuned for tablebeat on SQLite, MySQL/MariaDB or PostgreSQL."""
    parsed = parse_database_url(url or database_url())
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        # Beat and worker are separate processes on one file: wait for locks instead of failing.
        options["connect_args"] = {"timeout": 30, "check_same_thread": False}
    elif backend in ("mysql", "mariadb"):
        if parsed.get_driver_name() == "pymysql":
            import_pymysql()  # without cryptography until a login needs it (models/pymysql_import.py)
        options["pool_recycle"] = 3600
        # Naive DATETIMEs are UTC; make CURRENT_TIMESTAMP agree whatever the server zone is.
        options["connect_args"] = {"init_command": "SET time_zone = '+00:00'"}
        if parsed.get_driver_name() == "pymysql":
            options["connect_args"]["conv"] = pymysql_conversions.conversions()  # C datetime text
        # REPEATABLE READ would hide other processes' edits inside a long-lived transaction.
        # Set when each connection is made (below), not as an engine isolation_level: SQLAlchemy
        # applies that on every checkout *outside* its error wrapping, so a server going away at
        # that moment raised a raw pymysql error that outage handling (which catches SQLAlchemy's
        # errors) did not recognise, and a worker's run write failed instead of being retried.
    elif backend == "postgresql":
        options["connect_args"] = {"options": "-c timezone=UTC"}
    options.update(kwargs)
    engine = create_engine(parsed, **options)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif backend in ("mysql", "mariadb") and "isolation_level" not in kwargs:
        event.listen(engine, "connect", _mysql_read_committed)
    if backend in ("mysql", "mariadb") and parsed.get_driver_name() == "pymysql":
        event.listen(engine, "do_connect", pymysql_tls.connect)  # no CA store loaded per connection
    return engine


def _mysql_read_committed(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the worker read while beat writes; NORMAL sync is safe with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A session factory that keeps loaded values usable after commit."""
    from sqlalchemy.orm import sessionmaker  # the API's and CLI's: beat and workers never load the ORM

    return sessionmaker(engine, expire_on_commit=False)
