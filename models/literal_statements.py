"""The worker's hot statements on PyMySQL as literal SQL: compiled once, each call escapes only its own values.

:class:`~models.raw_statements.RawStatement` hands PyMySQL a parameter dict, which PyMySQL escapes
value by value through its type dispatch (``Cursor.mogrify``), after SQLAlchemy's bind processors:
about 20 µs of a worker's CPU per statement, as much as the round trip's own Python (T6). Here the
statement's constants (statuses, attempt 1, NULLs) are rendered into the SQL once, and a call
formats its per-call values into that text: integers with ``str``, ``None`` as ``NULL``, anything
else (strings, datetimes) through the connection's own ``escape``, which follows the server's
``NO_BACKSLASH_ESCAPES`` mode and the engine's conversions (``models.pymysql_conversions``). The
text sent is what PyMySQL would have sent; errors come back as SQLAlchemy's, as from RawStatement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from models.raw_statements import _PER_CALL, RawStatement

#: A pyformat placeholder as SQLAlchemy compiles one for PyMySQL.
_PLACEHOLDER = re.compile(r"%\(([^)]+)\)s")
#: Constant texts rendered into the SQL once: nothing the server's escaping mode could read differently.
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_ .:-]*")


def applies(dialect: Dialect) -> bool:
    """Whether statements for ``dialect`` can run as literal SQL (PyMySQL on MariaDB/MySQL)."""
    return dialect.name in ("mysql", "mariadb") and dialect.driver == "pymysql"


class LiteralStatement(RawStatement):
    """A :class:`RawStatement` for PyMySQL whose :meth:`execute` sends one literal SQL text."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        super().__init__(statement, dialect)
        if not applies(dialect):
            raise ValueError(f"literal SQL is built for PyMySQL, not {dialect.name}+{dialect.driver}")
        plan = {name: (constant, processor) for name, constant, processor in self._plan}
        pieces = _PLACEHOLDER.split(self.sql)  # text, name, text, name, ..., text
        template: list[str] = [pieces[0]]  # SQLAlchemy doubled any literal '%': the template keeps it so
        #: (bind name, constant value or _PER_CALL, bind processor or None) of each '%s' of the template.
        self._slots: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        for name, text in zip(pieces[1::2], pieces[2::2], strict=True):
            constant, processor = plan[name]
            rendered = None if constant is _PER_CALL else _constant_literal(constant, processor)
            if rendered is None:
                template.append("%s")
                self._slots.append((name, constant, processor))
            else:
                template.append(rendered.replace("%", "%%"))
            template.append(text)
        self._template = "".join(template)

    def literal_sql(self, escape: Callable[[Any], str], values: Mapping[str, Any]) -> str:
        """The SQL text for ``values``, escaped by ``escape`` (a PyMySQL connection's ``escape``)."""
        out = []
        for name, constant, processor in self._slots:
            value = values[name] if constant is _PER_CALL else constant
            if processor is not None:
                value = processor(value)
            if value is None:
                out.append("NULL")
            elif type(value) is int:
                out.append(str(value))
            else:
                out.append(escape(value))
        return self._template % tuple(out)

    def execute(self, connection: Any, values: Mapping[str, Any]) -> int:
        """Run on ``connection`` (a pool's raw PyMySQL connection); rowcount.

        :raises sqlalchemy.exc.DBAPIError: as :meth:`RawStatement.execute`.
        """
        # No parameters: PyMySQL sends the text as it is.
        return self._run(connection, self.literal_sql(connection.dbapi_connection.escape, values), None)


def _constant_literal(value: Any, processor: Callable[[Any], Any] | None) -> str | None:
    """A constant bound value as SQL text, when it reads the same in every escaping mode; else None."""
    if processor is not None:
        value = processor(value)
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    if type(value) is str and _PLAIN_TEXT.fullmatch(value):
        return f"'{value}'"
    return None
