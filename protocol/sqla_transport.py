"""kombu's SQLAlchemy broker transport, safe when several processes create a queue at once.

kombu's ``Channel._get_or_create`` looks a queue up and inserts it when missing, under a lock
that only serialises threads of one process.  When beat and workers start together on a new
broker database (the embedded default is ``sqla+sqlite:///tablebeat-broker.db``), two processes
can both miss the queue; the second insert fails on the unique queue name, and kombu, which
catches only ``OperationalError`` there, lets the ``IntegrityError`` end the worker ("Unrecoverable
error"); kombu's ``create_all`` of its tables races the same way ("table kombu_queue already
exists").  This channel rolls back and reads the row the other process made, and opens again
once the tables are there.  The Celery app
(``workers/celery_app.py``) points the ``sqla`` and ``sqlalchemy`` broker URL schemes at
this module's ``Transport`` by name: this module (which imports kombu's transport and SQLAlchemy's ORM) is
imported only when a broker URL uses it.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import sqlalchemy as kombu_sqlalchemy
from sqlalchemy.exc import IntegrityError, OperationalError


class Channel(kombu_sqlalchemy.Channel):
    """kombu's channel; kombu's tables or a queue another process created between lookup and create
    are used, not fatal."""

    def _open(self) -> Any:
        try:
            return super()._open()  # type: ignore[no-untyped-call]
        except OperationalError:
            # "table kombu_queue already exists": another process's create_all won between the
            # existence check and the CREATE. The check now finds the tables (any other error recurs).
            return super()._open()  # type: ignore[no-untyped-call]

    def _get_or_create(self, queue: str) -> Any:
        try:
            return super()._get_or_create(queue)  # type: ignore[no-untyped-call]
        except IntegrityError:
            self.session.rollback()
            return super()._get_or_create(queue)  # type: ignore[no-untyped-call]  # the other process's row


class Transport(kombu_sqlalchemy.Transport):
    """kombu's SQLAlchemy transport with :class:`Channel`."""

    Channel = Channel
