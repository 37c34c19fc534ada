"""The Celery application shared by beat and workers."""

from __future__ import annotations

import sys

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

from conf.celery import settings_of
from conf.settings import Settings
from protocol.signing import SigningError, enable_signing

# kombu's SQLAlchemy broker transport, made safe for processes creating a queue at once; by name, so
# kombu imports it (and SQLAlchemy's ORM) only for an sqla+ broker URL.
SQLA_TRANSPORT = "protocol.sqla_transport:Transport"
TRANSPORT_ALIASES.update(sqla=SQLA_TRANSPORT, sqlalchemy=SQLA_TRANSPORT)

app = Celery("tablebeat")
app.config_from_object("celeryconfig")
try:
    enable_signing(app)  # only when TABLEBEAT_SIGNING_* are set
except SigningError as exc:
    sys.exit(f"tablebeat: invalid configuration: {exc}")


def settings() -> Settings:
    """This process's settings: built once by ``celeryconfig`` (loaded on first use of ``app.conf``)."""
    return settings_of(app.conf)
