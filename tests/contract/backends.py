"""The backend cells of the contract suite: a database kind and a broker kind, each made fresh.

Databases: ``mariadb``, ``postgresql``, ``sqlite`` (the fixtures of ``tests/conftest.py``).
Brokers: ``redis`` (a locked database number), ``rabbitmq`` (a vhost of the cell's own, made and
removed with ``rabbitmqctl``) and ``sqla`` (kombu's SQLAlchemy transport on a SQLite file, the
embedded default).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.processes import redis_broker_db

DATABASES = ("mariadb", "postgresql", "sqlite")
BROKERS = ("redis", "rabbitmq", "sqla")

RABBITMQ_URL = os.environ.get("TABLEBEAT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


@dataclass(frozen=True)
class Cell:
    database: str
    broker: str

    @property
    def id(self) -> str:
        return f"{self.database}-{self.broker}"


#: Fire and record run on every cell; the other behaviours on each database with Redis and on
#: each broker with MariaDB, so every database and every broker passes all of them.
#: In run order: a quick fire-only cell after each longer one, so the cells made in the
#: background while one runs (conftest.py) are ready when their turn comes.
ALL_CELLS = [
    Cell(*pair.split("-"))
    for pair in (
        "mariadb-redis",
        "mariadb-rabbitmq",
        "postgresql-rabbitmq",
        "mariadb-sqla",
        "postgresql-sqla",
        "postgresql-redis",
        "sqlite-rabbitmq",
        "sqlite-redis",
        "sqlite-sqla",
    )
]
assert {(c.database, c.broker) for c in ALL_CELLS} == {(d, b) for d in DATABASES for b in BROKERS}
CORE_CELLS = [c for c in ALL_CELLS if c.broker == "redis" or c.database == "mariadb"]
#: Behaviours decided by the database alone (beat restart, lost-run detection): each database once.
DATABASE_CELLS = [c for c in ALL_CELLS if c.broker == "redis"]


def params(cells: list[Cell]) -> list:
    """``pytest.param`` for each cell, marked with the database server it needs."""
    return [
        pytest.param(cell, id=cell.id, marks=[getattr(pytest.mark, cell.database)] if cell.database != "sqlite" else [])
        for cell in cells
    ]


def _rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")


def require_rabbitmq() -> None:
    """Skip (fail under ``CI``) when RabbitMQ's control tool or server is missing."""
    reason = None
    if shutil.which("rabbitmqctl") is None:
        reason = "rabbitmqctl not installed"
    else:
        probe = subprocess.run(["rabbitmq-diagnostics", "-q", "ping"], capture_output=True, text=True, timeout=120)
        if probe.returncode != 0:
            reason = f"RabbitMQ not running: {probe.stderr.strip() or probe.stdout.strip()}"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A broker URL on a vhost of its own, deleted (with its queues) afterwards."""
    require_rabbitmq()
    vhost = f"tablebeat-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield urlsplit(RABBITMQ_URL)._replace(path="/" + vhost).geturl()
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@contextmanager
def sqla_broker() -> Iterator[str]:
    """The embedded broker: kombu's SQLAlchemy transport on a SQLite file of its own."""
    directory = Path(tempfile.mkdtemp(prefix="tablebeat-broker-"))
    try:
        yield f"sqla+sqlite:///{directory / 'broker.db'}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def broker(kind: str) -> Iterator[str]:
    makers = {"redis": redis_broker_db, "rabbitmq": rabbitmq_vhost, "sqla": sqla_broker}
    with makers[kind]() as url:
        yield url
