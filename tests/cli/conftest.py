"""Fixtures of the CLI tests: ``tablebeat`` run in-process by Typer's CliRunner on MariaDB + Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from click.testing import Result
from sqlalchemy import Engine
from typer.testing import CliRunner

from cli.main import app
from models import make_engine
from tests.api.ops_env import clear_tables

Invoke = Callable[..., Result]


@pytest.fixture(scope="module")
def db_url(mariadb_url: str) -> str:
    return mariadb_url


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[Engine]:
    created = make_engine(db_url)
    yield created
    created.dispose()


@pytest.fixture
def tablebeat(db_url: str, broker_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """``tablebeat(*argv, input=None)``: run the CLI against the test database, on empty tables."""
    monkeypatch.setenv("TABLEBEAT_DATABASE_URL", db_url)
    monkeypatch.setenv("TABLEBEAT_BROKER_URL", broker_url)
    monkeypatch.setenv("COLUMNS", "220")  # Rich tables wide enough to keep values on one line
    monkeypatch.delenv("TABLEBEAT_API_TOKEN", raising=False)
    clear_tables(engine)
    runner = CliRunner()

    def invoke(*argv: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(argv), input=input)

    return invoke
