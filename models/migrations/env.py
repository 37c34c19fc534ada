"""Alembic environment, configured programmatically by :mod:`models.migrate`.

The caller passes an open connection in ``config.attributes["connection"]`` (preferred) or a URL
in ``config.attributes["url"]``; without either, ``TABLEBEAT_DATABASE_URL`` / the SQLite default
is used. Offline (``--sql``) mode is not supported: revision 0001 inspects the live database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from models import Base  # imports every ORM model: Base.metadata holds every table
from models.engine import database_url, make_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or database_url()
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("tablebeat migrations need a live database connection (offline mode unsupported)")
run_migrations_online()
