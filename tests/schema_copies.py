"""Migrated test databases as copies of one migrated per test process.

Running every Alembic revision for each test costs 1.5–3 s on MariaDB and PostgreSQL (an
``ALTER`` rebuilds the table each time); a copy of a database migrated once costs a fraction
of that. PostgreSQL copies with ``CREATE DATABASE ... TEMPLATE``; MariaDB replays the
template's ``SHOW CREATE TABLE`` / ``SHOW CREATE TRIGGER`` and copies its rows; SQLite copies
the file. ``tests/db/test_migrations.py`` still runs the migrations themselves on every server.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL

#: kind -> the template: a database name (servers) or a file path (SQLite), made on first use.
_templates: dict[str, str] = {}


def template(kind: str, admin_url: URL) -> str:
    """The migrated template database of ``kind`` for this process (made once)."""
    if kind in _templates:
        return _templates[kind]
    from models.migrate import upgrade

    if kind == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="tablebeat-template-")) / "tablebeat.db"
        upgrade(f"sqlite:///{path}")
        _templates[kind] = str(path)
        return str(path)
    name = f"tb_tmpl_{uuid.uuid4().hex[:12]}"
    admin = admin_engine(admin_url)
    try:
        create_database(kind, admin, name)
    finally:
        admin.dispose()
    upgrade(database_url(kind, admin_url, name).render_as_string(hide_password=False))
    _templates[kind] = name
    return name


def copy_sqlite(directory: Path) -> str:
    """A copy of the SQLite template in ``directory``; returns its URL."""
    target = directory / "tablebeat.db"
    shutil.copyfile(_templates["sqlite"], target)
    return f"sqlite:///{target}"


def copy_server_database(kind: str, admin: Engine, source: str, name: str) -> None:
    """Create database ``name`` as a copy of ``source`` (schema, triggers, rows)."""
    if kind == "postgresql":
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        return
    create_database(kind, admin, name)
    target = admin_engine(database_url(kind, admin.url, name))
    try:
        with target.connect() as conn:
            tables = [
                row[0]
                for row in conn.exec_driver_sql(f"SHOW FULL TABLES FROM `{source}` WHERE Table_type = 'BASE TABLE'")
            ]
            for table in tables:
                ddl = conn.exec_driver_sql(f"SHOW CREATE TABLE `{source}`.`{table}`").one()[1]
                conn.exec_driver_sql(ddl)
                conn.exec_driver_sql(f"INSERT INTO `{table}` SELECT * FROM `{source}`.`{table}`")
            for row in conn.exec_driver_sql(f"SHOW TRIGGERS FROM `{source}`").all():
                created = conn.exec_driver_sql(f"SHOW CREATE TRIGGER `{source}`.`{row[0]}`").one()
                conn.exec_driver_sql(f"SET SESSION sql_mode = '{created[1]}'")
                conn.exec_driver_sql(created[2])
    finally:
        target.dispose()


def drop_templates(admin_urls: dict[str, URL]) -> None:
    """Drop this process's templates (at the end of the session)."""
    for kind, name in list(_templates.items()):
        if kind == "sqlite":
            shutil.rmtree(Path(name).parent, ignore_errors=True)
        else:
            admin = admin_engine(admin_urls[kind])
            try:
                drop_database(kind, admin, name)
            finally:
                admin.dispose()
        del _templates[kind]


def create_database(kind: str, admin: Engine, name: str) -> None:
    """An empty database ``name`` (utf8mb4 on MariaDB) through the autocommit ``admin`` engine."""
    charset = " CHARACTER SET utf8mb4" if kind == "mariadb" else ""
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {_quote(kind, name)}{charset}")


def drop_database(kind: str, admin: Engine, name: str) -> None:
    """Drop ``name`` if it exists (PostgreSQL: closing its connections first)."""
    force = " WITH (FORCE)" if kind == "postgresql" else ""
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {_quote(kind, name)}{force}")


def database_url(kind: str, admin_url: URL, name: str) -> URL:
    """The URL of database ``name`` on the server of ``admin_url``."""
    url = admin_url.set(database=name)
    return url.update_query_dict({"charset": "utf8mb4"}) if kind == "mariadb" else url


def _quote(kind: str, name: str) -> str:
    return f"`{name}`" if kind == "mariadb" else f'"{name}"'


def admin_engine(url: URL) -> Engine:
    """An autocommit engine on ``url`` (CREATE/DROP DATABASE cannot run in a transaction)."""
    return create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
