"""Beat's idle poll on a raw DB-API cursor (scheduler/idle_poll.py): the same probe, silent-beat
check and stamp as the SQLAlchemy path, autocommit statements, errors as ``DBAPIError``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from models import BeatNode, ExecuteTask, Task, TaskChange, make_engine
from scheduler import store, sweeps, timeline
from scheduler.idle_poll import IdlePoll

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
#: Silent-beat cut-off of the polls below: before every stamp they write.
SILENT = T0 - timedelta(hours=1)


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    eng = make_engine(migrated_url, pool_pre_ping=False)
    with eng.begin() as conn:
        timeline.stamp_beat(conn, "me", T0)
    yield eng
    eng.dispose()


@pytest.fixture
def poll(engine: Engine) -> Iterator[IdlePoll]:
    idle = IdlePoll(engine)
    yield idle
    idle.close()


def seen_at(engine: Engine, token: str = "me") -> datetime | None:
    with engine.begin() as conn:
        return conn.scalar(select(BeatNode.seen_at).where(BeatNode.token == token))


def test_nothing_changed_stamps_this_beat(engine: Engine, poll: IdlePoll) -> None:
    poll.connect()  # beat takes the connection at start
    later = T0 + timedelta(seconds=1)
    assert poll.poll(0, "me", later, SILENT, stamp=True) == []
    assert seen_at(engine) == later  # committed, with microseconds, read back as the same aware UTC instant
    assert poll.poll(0, "me", later + timedelta(seconds=1), SILENT, stamp=True) == []  # the kept connection again
    assert seen_at(engine) == later + timedelta(seconds=1)


def test_changes_leave_the_poll_to_the_caller_with_nothing_written(engine: Engine, poll: IdlePoll) -> None:
    with engine.begin() as conn:
        conn.execute(insert(TaskChange).values(task_id=7))
        top = store.change_cursor(conn)
    assert poll.poll(top - 1, "me", T0 + timedelta(seconds=5), SILENT, stamp=True) is None
    assert seen_at(engine) == T0
    assert poll.poll(top, "me", T0 + timedelta(seconds=5), SILENT, stamp=True) == []  # nothing after the newest
    assert seen_at(engine) == T0 + timedelta(seconds=5)


def test_a_missing_beat_row_is_left_to_the_caller(engine: Engine, poll: IdlePoll) -> None:
    with engine.begin() as conn:
        conn.execute(delete(BeatNode))
    assert poll.poll(0, "me", T0, SILENT, stamp=True) is None
    assert seen_at(engine) is None


def claim_for(engine: Engine, token: str, published: bool = False) -> None:
    """An unpublished (or published) pending run claimed by beat ``token``."""
    with engine.begin() as conn:
        row = {"task_key": f"k-{token}-{published}", "desc": "t", "execute_func": "workers.examples.hello"}
        task_id = conn.execute(
            insert(Task).values(**row, trigger="interval", spec="60", is_valid=1)
        ).inserted_primary_key[0]
        conn.execute(
            insert(ExecuteTask).values(
                task_id=task_id,
                status="pending",
                trace_id=f"trace-{token}-{published}",
                scheduled_at=T0,
                claimed_by=token,
                published_at=T0 if published else None,
            )
        )


def test_silent_beats_holding_claims_are_found_and_nothing_is_stamped(engine: Engine, poll: IdlePoll) -> None:
    with engine.begin() as conn:
        timeline.stamp_beat(conn, "silent", T0 - timedelta(seconds=10))
        timeline.stamp_beat(conn, "silent-idle", T0 - timedelta(seconds=10))  # holds no claim: nothing to take
        timeline.stamp_beat(conn, "silent-published", T0 - timedelta(seconds=10))
        timeline.stamp_beat(conn, "alive", T0)
    claim_for(engine, "silent-published", published=True)
    claim_for(engine, "alive")
    claim_for(engine, "silent", published=True)
    with engine.begin() as conn:
        top = store.change_cursor(conn)  # the claims' tasks are in the change log
    assert poll.poll(top, "me", T0 + timedelta(seconds=9), T0 - timedelta(seconds=5), stamp=False) == []
    claim_for(engine, "silent")
    with engine.begin() as conn:
        top = store.change_cursor(conn)
    assert poll.poll(top, "me", T0 + timedelta(seconds=9), T0 - timedelta(seconds=5), stamp=False) == ["silent"]
    assert seen_at(engine) == T0
    # Found and stamped in one poll; a change in the log leaves both to the caller.
    assert poll.poll(top, "me", T0 + timedelta(seconds=9), T0 - timedelta(seconds=5), stamp=True) == ["silent"]
    assert seen_at(engine) == T0 + timedelta(seconds=9)
    with engine.begin() as conn:
        conn.execute(insert(TaskChange).values(task_id=7))
        assert store.change_cursor(conn) > top
    assert poll.poll(top, "me", T0 + timedelta(seconds=10), T0 - timedelta(seconds=5), stamp=True) is None
    assert seen_at(engine) == T0 + timedelta(seconds=9)


def test_no_stamp_asked_writes_nothing(engine: Engine, poll: IdlePoll) -> None:
    assert poll.poll(0, "me", T0 + timedelta(seconds=1), SILENT, stamp=False) == []
    assert seen_at(engine) == T0
    with engine.begin() as conn:
        conn.execute(delete(BeatNode))
    assert (
        poll.poll(0, "me", T0 + timedelta(seconds=1), SILENT, stamp=False) == []
    )  # the row is looked at only to stamp


def test_a_failed_statement_is_a_dbapi_error_and_the_next_poll_recovers(
    engine: Engine, poll: IdlePoll, db_kind: str
) -> None:
    assert poll.poll(0, "me", T0, SILENT, stamp=True) == []
    if db_kind == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE beat_node RENAME TO beat_node_away")
        with pytest.raises(DBAPIError):
            poll.poll(0, "me", T0, SILENT, stamp=True)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE beat_node_away RENAME TO beat_node")
    else:
        # The server drops the poll's connection (a restart, a proxy timeout): the statement fails,
        # the connection is discarded, and the next poll gets a new one from the pool.
        assert poll._conn is not None
        with poll._conn.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute("SELECT pg_backend_pid()" if db_kind == "postgresql" else "SELECT CONNECTION_ID()")
            backend = cursor.fetchone()[0]
        poll._conn.commit()
        with engine.connect() as conn:
            if db_kind == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
            else:
                conn.exec_driver_sql(f"KILL {int(backend)}")
        with pytest.raises(DBAPIError) as failed:
            poll.poll(0, "me", T0, SILENT, stamp=True)
        assert failed.value.connection_invalidated
    later = T0 + timedelta(seconds=3)
    assert poll.poll(0, "me", later, SILENT, stamp=True) == []
    assert seen_at(engine) == later


def test_newest_marks_move_with_an_added_and_an_edited_row(engine: Engine, poll: IdlePoll) -> None:
    empty = poll.newest_marks()
    assert poll.newest_marks() == empty  # nothing changed: the same reading
    row = {"task_key": "marks", "desc": "t", "execute_func": "workers.examples.hello", "trigger": "interval"}
    with engine.begin() as conn:
        task_id = conn.execute(insert(Task).values(**row, spec="60", is_valid=1)).inserted_primary_key[0]
    added = poll.newest_marks()  # autocommit: no snapshot from the first read hides the insert
    assert added != empty
    with engine.connect() as conn:
        inserted_at = conn.scalar(select(Task.update_at).where(Task.id == task_id))
    # A config edit's trigger stamps update_at with the database's clock (SQLite: milliseconds), so
    # an edit in the insert's own millisecond would leave MAX(update_at) where it was: edit after it.
    while datetime.now(UTC) <= inserted_at + timedelta(milliseconds=1):
        time.sleep(0.001)
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == task_id).values(spec="120", update_at=T0 + timedelta(days=3650)))
    assert poll.newest_marks() != added


def test_the_connection_goes_back_to_the_pool_out_of_autocommit(engine: Engine, poll: IdlePoll) -> None:
    assert poll.poll(0, "me", T0 + timedelta(seconds=1), SILENT, stamp=True) == []
    poll.close()
    # The pool's next user gets the same connection: its rollback must still undo its writes.
    with engine.connect() as conn:
        conn.execute(update(BeatNode).where(BeatNode.token == "me").values(seen_at=T0 + timedelta(seconds=9)))
        conn.rollback()
    assert seen_at(engine) == T0 + timedelta(seconds=1)


def test_anything_to_sweep_agrees_with_the_sqlalchemy_path(engine: Engine, poll: IdlePoll) -> None:
    with engine.begin() as conn:
        assert poll.anything_to_sweep() is False
        assert sweeps.anything_to_sweep(conn) is False
    claim_for(engine, "me", published=True)  # a pending run
    with engine.begin() as conn:
        assert poll.anything_to_sweep() is True
        assert sweeps.anything_to_sweep(conn) is True
        conn.execute(update(ExecuteTask).values(status="success"))
    assert poll.anything_to_sweep() is False
