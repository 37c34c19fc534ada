"""Statements compiled once and run on a raw DB-API cursor (the worker's two writes of every run).

SQLAlchemy's ``Connection.execute`` costs about as much CPU per statement as the driver's own
round trip (execution context, parameter processing, result wrapping); a fresh run pays it twice.
The statements stay SQLAlchemy constructs (one source for every dialect); only the compiled SQL
and the per-parameter bind processors are kept, and errors come back as SQLAlchemy's exception
classes, so callers classify outages, deadlocks and unique-index violations as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

#: A parameter bound per call (no value in the statement itself).
_PER_CALL = object()


class RawStatement:
    """One statement compiled for ``dialect``; :meth:`execute` runs it and returns the rowcount."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)  # a DML statement compiles to one
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("a raw statement cannot have parameters expanded at execution (IN lists)")
        self.sql = compiled.string
        self._dialect = dialect
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        names = list(compiled.positiontup) if compiled.positiontup is not None else list(by_name)
        #: (name in the SQL, constant value or _PER_CALL, bind processor or None), in the SQL's order.
        self._plan: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name in names:
            bind = by_name[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self._plan.append((name, _PER_CALL if bind.required else bind.effective_value, processor))
        self._positional = compiled.positiontup is not None

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters for ``values`` (every per-call bind name)."""
        out = []
        for name, constant, processor in self._plan:
            value = values[name] if constant is _PER_CALL else constant
            out.append(value if processor is None else processor(value))
        if self._positional:
            return tuple(out)
        return {name: value for (name, _, _), value in zip(self._plan, out, strict=True)}

    def execute(self, connection: Any, values: Mapping[str, Any]) -> int:
        """Run on ``connection`` (a pool's raw connection); rowcount.

        :raises sqlalchemy.exc.DBAPIError: the driver's error wrapped as SQLAlchemy wraps it; a
            disconnect invalidates ``connection`` (the pool will not hand it out again).
        """
        return self._run(connection, self.sql, self.parameters(values))

    def _run(self, connection: Any, sql: str, params: Any) -> int:
        """``sql`` with ``params`` (None: none) on a cursor of ``connection``; rowcount, errors as :meth:`execute`."""
        cursor = connection.cursor()
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
            return int(cursor.rowcount)
        except self._dialect.loaded_dbapi.Error as exc:
            gone = self._dialect.is_disconnect(exc, connection.dbapi_connection, cursor)
            if gone:
                connection.invalidate(exc)
            raise DBAPIError.instance(
                sql, params, exc, self._dialect.loaded_dbapi.Error, connection_invalidated=gone, dialect=self._dialect
            ) from exc
        finally:
            if connection.is_valid:  # an invalidated connection took its cursor with it
                cursor.close()
