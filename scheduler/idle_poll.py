"""Beat's idle poll on a raw DB-API cursor: the change-log probe, the silent-beat check and the stamp.

Twice a second beat asks "did anything change, and has a beat holding claims gone silent?" in one
statement, and stamps ``beat_node`` while it holds claims itself (``scheduler/liveness.py``).
Nearly always both answers are no, and through SQLAlchemy's ``Connection`` each such poll cost
1.3-2 ms of CPU, ten times the driver's own work.  Here the same statements, compiled once per
dialect to the driver's SQL text, run on a cursor of one pooled connection kept checked out in
autocommit mode: the probe and the stamp are independent, so each is a statement of its own and
no poll pays a ``COMMIT`` round trip.  A poll that finds changes (or needs anything more than the
probe and the stamp) is left to the caller, who does it through SQLAlchemy; errors come out as
SQLAlchemy's ``DBAPIError`` like any other statement's, so outage handling is the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, exc
from sqlalchemy.pool import PoolProxiedConnection

from models.raw_statements import RawStatement
from scheduler import sweeps, timeline


class IdlePoll:
    """The probe-and-stamp poll of one beat on a raw cursor of a pooled connection it keeps
    (in autocommit mode until it gives the connection back)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        self.dialect = dialect
        self._probe = RawStatement(timeline.PROBE_AND_DEAD, dialect)
        self._stamp = RawStatement(timeline.STAMP, dialect)
        self._marks = RawStatement(timeline.NEWEST_MARKS, dialect)
        self._open = RawStatement(sweeps.ANYTHING_OPEN, dialect)
        self._conn: PoolProxiedConnection | None = None
        self._cursor: Any = None

    def poll(self, after: int, token: str, now: datetime, dead_since: datetime, *, stamp: bool) -> list[str] | None:
        """Probe the change log after id ``after`` and look for a beat silent since ``dead_since``
        that holds claims (one statement); then stamp ``token`` at ``now`` if ``stamp``.

        Returns the silent beat's token (a list of at most one: the next poll finds the next), or
        None, with nothing written, when the poll needs the caller: the log has changes, or this
        beat's ``beat_node`` row is missing.

        :raises sqlalchemy.exc.DBAPIError: the statement or the connection failed.
        """
        statement, params = self._probe.sql, None
        try:
            cursor = self._cursor or self._checkout()
            params = self._probe.parameters({"after": after, "b_since": dead_since, "b_token": token})
            cursor.execute(statement, params)
            changed, dead = cursor.fetchone() or (None, None)
            if changed is not None:
                return None
            if stamp:
                statement, params = self._stamp.sql, self._stamp.parameters({"b_token": token, "b_now": now})
                cursor.execute(statement, params)
                if not cursor.rowcount:
                    return None
            return [] if dead is None else [str(dead)]
        except self.dialect.loaded_dbapi.Error as err:
            raise self._failed(err, statement, params) from err

    def newest_marks(self) -> tuple[Any, ...]:
        """The safety net's marks (``MAX(update_at)``, ``MAX(id)`` of ``task``) as the driver returns
        them: only compared with an earlier reading of this same call.

        :raises sqlalchemy.exc.DBAPIError: the statement or the connection failed.
        """
        return self._one_row(self._marks)

    def anything_to_sweep(self) -> bool:
        """``sweeps.anything_to_sweep`` on this cursor: housekeeping's one question when beat is idle.

        :raises sqlalchemy.exc.DBAPIError: the statement or the connection failed.
        """
        row = self._one_row(self._open)
        return bool(row and row[0])

    def _one_row(self, statement: RawStatement) -> tuple[Any, ...]:
        """The first row of a statement without parameters (empty when it returns none)."""
        try:
            cursor = self._cursor or self._checkout()
            cursor.execute(statement.sql, statement.parameters({}))
            return tuple(cursor.fetchone() or ())
        except self.dialect.loaded_dbapi.Error as err:
            raise self._failed(err, statement.sql, None) from err

    def connect(self) -> None:
        """Check the connection out now (at start), not in the first ticks.

        :raises sqlalchemy.exc.DBAPIError: the database cannot be reached (the first poll tries again).
        """
        if self._cursor is None:
            self._checkout()

    def close(self) -> None:
        """Give the connection back to the pool, out of autocommit mode."""
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is None:
            return
        try:
            dbapi_connection = conn.dbapi_connection
            assert dbapi_connection is not None  # a valid pooled connection holds its driver connection
            self.dialect.reset_isolation_level(dbapi_connection)
            conn.close()
        except Exception as err:  # a broken connection: the pool must not hand it out again
            conn.invalidate(err)

    def _checkout(self) -> Any:
        conn = self.engine.raw_connection()  # connect errors come out as DBAPIError already
        try:
            dbapi_connection = conn.dbapi_connection
            assert dbapi_connection is not None  # just checked out
            self.dialect.set_isolation_level(dbapi_connection, "AUTOCOMMIT")
        except Exception as err:
            conn.invalidate(err)
            raise
        self._conn, self._cursor = conn, conn.cursor()
        return self._cursor

    def _failed(self, err: Any, statement: str, params: Any) -> exc.DBAPIError:
        """Drop the connection (invalidated when it is gone, as SQLAlchemy does); wrap the driver's error."""
        conn, cursor = self._conn, self._cursor
        invalidated = conn is not None and self.dialect.is_disconnect(err, conn.dbapi_connection, cursor)
        if conn is not None:
            if invalidated:
                self._conn, self._cursor = None, None
                conn.invalidate(err)
            else:
                self.close()
        wrapped = exc.DBAPIError.instance(
            statement,
            params,
            err,
            self.dialect.loaded_dbapi.Error,
            connection_invalidated=invalidated,
            dialect=self.dialect,
        )
        assert isinstance(wrapped, exc.DBAPIError)
        return wrapped
