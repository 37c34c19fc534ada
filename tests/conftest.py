"""Shared fixtures: throw-away databases on SQLite, MariaDB and PostgreSQL (real servers, no mocks).

Server locations (admin URLs; a fresh database is created next to the one named):

* ``TABLEBEAT_TEST_MARIADB_URL``    default ``mysql+pymysql://root@127.0.0.1:3306/test``
* ``TABLEBEAT_TEST_POSTGRESQL_URL`` default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``

An unreachable server skips its tests with the reason, or fails them when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from tests import file_order, schema_copies

DB_KINDS = ("sqlite", "mariadb", "postgresql")

_ADMIN_URLS = {
    "mariadb": os.environ.get("TABLEBEAT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    "postgresql": os.environ.get("TABLEBEAT_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
}

#: Reachability of each server, probed once per session: kind -> error message or None.
_unreachable: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mariadb: needs the MariaDB/MySQL server")
    config.addinivalue_line("markers", "postgresql: needs the PostgreSQL server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    file_order.longest_first(items)


def _admin_url(kind: str) -> URL:
    return make_url(_ADMIN_URLS[kind])


def _admin_engine(kind: str):
    return schema_copies.admin_engine(_admin_url(kind))


def require_server(kind: str) -> None:
    """Skip (or fail, when ``CI`` is set) unless the ``kind`` database server answers."""
    if kind == "sqlite":
        return
    if kind not in _unreachable:
        engine = _admin_engine(kind)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            _unreachable[kind] = None
        except Exception as exc:  # any driver error means "not usable here"
            _unreachable[kind] = f"{kind} server at {_admin_url(kind).render_as_string()} unreachable: {exc}"
        finally:
            engine.dispose()
    reason = _unreachable[kind]
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def fresh_database(kind: str, *, migrated: bool = False) -> Iterator[str]:
    """Create an empty, uniquely named database of ``kind`` and yield its URL; drop it afterwards.

    ``kind`` is ``sqlite`` (a temp file), ``mariadb`` or ``postgresql``. ``migrated``: with
    tablebeat's schema, copied from a database migrated once per test process.
    """
    if kind == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="tablebeat-test-"))
        try:
            if migrated:
                schema_copies.template(kind, make_url("sqlite://"))
                yield schema_copies.copy_sqlite(directory)
            else:
                yield f"sqlite:///{directory / 'tablebeat.db'}"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    if kind not in _ADMIN_URLS:
        raise ValueError(f"unknown database kind {kind!r}; one of {DB_KINDS}")
    require_server(kind)
    name = f"tb_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(kind)
    try:
        if migrated:
            schema_copies.copy_server_database(kind, admin, schema_copies.template(kind, _admin_url(kind)), name)
        else:
            schema_copies.create_database(kind, admin, name)
        try:
            yield schema_copies.database_url(kind, _admin_url(kind), name).render_as_string(hide_password=False)
        finally:
            schema_copies.drop_database(kind, admin, name)
    finally:
        admin.dispose()


def pytest_sessionfinish(session: pytest.Session) -> None:
    schema_copies.drop_templates({kind: _admin_url(kind) for kind in _ADMIN_URLS})


_KIND_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
]


@pytest.fixture(params=_KIND_PARAMS)
def db_kind(request: pytest.FixtureRequest) -> str:
    """``sqlite`` / ``mariadb`` / ``postgresql``; tests using it run once per kind."""
    require_server(request.param)
    return request.param


@pytest.fixture
def db_url(db_kind: str) -> Iterator[str]:
    """URL of a fresh, empty database of each kind (one per test, dropped afterwards)."""
    with fresh_database(db_kind) as url:
        yield url


@pytest.fixture
def migrated_url(db_kind: str) -> Iterator[str]:
    """A fresh database of each kind with tablebeat's schema (one per test, dropped afterwards)."""
    with migrated_database(db_kind) as url:
        yield url


@contextmanager
def migrated_database(kind: str) -> Iterator[str]:
    """A fresh database of ``kind`` with tablebeat's schema; dropped afterwards."""
    with fresh_database(kind, migrated=True) as url:
        yield url


@pytest.fixture(scope="module")
def mariadb_url() -> Iterator[str]:
    """A fresh, migrated MariaDB database shared by one test module."""
    with migrated_database("mariadb") as url:
        yield url


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A Redis broker database of this module's own, flushed before and after."""
    from tests.processes import redis_broker_db

    with redis_broker_db() as url:
        yield url


@pytest.fixture(scope="module")
def db(mariadb_url: str) -> Iterator[Any]:
    """An engine on :func:`mariadb_url`."""
    from models import make_engine

    engine = make_engine(mariadb_url)
    yield engine
    engine.dispose()
