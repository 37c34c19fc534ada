"""Declarative base of the ORM models (the API and CLI); their tables are ``models.tables``."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import Table
from sqlalchemy.orm import DeclarativeBase

from models.tables import metadata
from models.types import UTCDateTime, clock_now, utcnow

__all__ = ["Base", "UTCDateTime", "clock_now", "utcnow"]


class Base(DeclarativeBase):
    """Base class of tablebeat's ORM models."""

    metadata = metadata
    #: Every model maps one declared table (SQLAlchemy types it as the wider ``FromClause``).
    __table__: ClassVar[Table]
