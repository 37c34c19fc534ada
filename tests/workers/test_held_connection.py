"""The worker's held connection: reused for back-to-back runs, back in the pool when older or after an error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from workers import held_connection
from workers.held_connection import HeldConnection


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'held.db'}")
    yield eng
    eng.dispose()


def dbapi_of(held: HeldConnection) -> Any:
    with held.connection() as raw:
        return raw.dbapi_connection


def test_back_to_back_uses_share_one_checkout(engine: Engine) -> None:
    held = HeldConnection(lambda: engine)
    first = dbapi_of(held)
    assert dbapi_of(held) is first
    assert engine.pool.checkedout() == 1  # held between uses
    held.release()
    assert engine.pool.checkedout() == 0


def test_a_connection_held_too_long_goes_back_to_the_pool_first(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldConnection(lambda: engine)
    dbapi_of(held)
    monkeypatch.setattr(held_connection, "HOLD_SECONDS", -1.0)
    checkins = []
    monkeypatch.setattr(engine.pool, "_do_return_conn", lambda record: checkins.append(record))
    dbapi_of(held)
    assert len(checkins) == 1  # the old one was checked in before a new checkout


def test_after_an_error_the_connection_goes_back_to_the_pool(engine: Engine) -> None:
    held = HeldConnection(lambda: engine)
    with pytest.raises(RuntimeError), held.connection():
        raise RuntimeError("statement failed")
    assert engine.pool.checkedout() == 0


def test_concurrent_users_get_their_own_connections_and_one_is_kept(engine: Engine) -> None:
    held = HeldConnection(lambda: engine)
    with held.connection() as outer, held.connection() as inner:
        assert inner.dbapi_connection is not outer.dbapi_connection
        assert engine.pool.checkedout() == 2
    assert engine.pool.checkedout() == 1  # at most one kept, however many threads write


def test_after_fork_the_parents_connection_is_left_alone(engine: Engine) -> None:
    held = HeldConnection(lambda: engine)
    parents = dbapi_of(held)
    held.forget_after_fork()
    assert dbapi_of(held) is not parents
    # Still open: the child neither closed nor returned it.
    assert parents.execute("SELECT 1").fetchone() == (1,)
