"""Schema migrations: run tablebeat's Alembic revisions against a database.

Alembic is configured programmatically (no alembic.ini), with ``script_location`` pointing at
this package's ``migrations`` directory, so it works from an installed package and any cwd.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from models.engine import database_url, make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Arbitrary constant identifying tablebeat's migration lock (PostgreSQL advisory lock key).
_PG_LOCK_KEY = 0x7461626C  # "tabl"
_MYSQL_LOCK_NAME = "tablebeat_migrate"
_LOCK_TIMEOUT_SECONDS = 600


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for tablebeat's migrations, targeting ``url`` (default: configured)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not a main option: ConfigParser would choke on '%' in passwords.
    cfg.attributes["url"] = url or database_url()
    return cfg


def head_revision() -> str | None:
    """The newest revision shipped with this version of tablebeat."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _lock(conn: Connection) -> None:
    """Serialise concurrent upgrades (e.g. several processes starting at once)."""
    name = conn.dialect.name
    if name in ("mysql", "mariadb"):
        got = conn.execute(
            text("SELECT GET_LOCK(:n, :t)"), {"n": _MYSQL_LOCK_NAME, "t": _LOCK_TIMEOUT_SECONDS}
        ).scalar()
        if got != 1:
            raise TimeoutError("another process is migrating the tablebeat database")
    elif name == "postgresql":
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
    # SQLite: DDL takes the database write lock; concurrent upgrades of one file are serialised.


def _unlock(conn: Connection) -> None:
    name = conn.dialect.name
    if name in ("mysql", "mariadb"):
        conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _MYSQL_LOCK_NAME})
    elif name == "postgresql":
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Upgrade the database at ``url`` (default :func:`models.engine.database_url`) to ``revision``.

    Creates the schema on an empty database, or converts a database made with the original
    (pre-tablebeat) MySQL schema in place. Running it again when up to date is a no-op.
    """
    url = url or database_url()
    engine: Engine = make_engine(url)
    try:
        with engine.connect() as lock_conn:
            _lock(lock_conn)
            lock_conn.commit()
            try:
                with engine.begin() as conn:
                    cfg = alembic_config(url)
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
            finally:
                _unlock(lock_conn)
                lock_conn.commit()
    finally:
        engine.dispose()


def current_revision(url: str | None = None) -> str | None:
    """The revision the database at ``url`` is at, or ``None`` if it was never migrated."""
    engine = make_engine(url or database_url())
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def is_up_to_date(url: str | None = None) -> bool:
    """Whether the database at ``url`` is at the newest shipped revision."""
    return current_revision(url) == head_revision()
