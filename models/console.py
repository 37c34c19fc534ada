"""Console sign-in state shared by every API process: sessions and failed sign-ins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class ConsoleSession(Base):
    """One signed-in browser. Signing out deletes the row; past ``expires_at`` it is dead.

    The row holds a hash of the cookie, never the cookie: reading this table does not let
    anyone sign in. ``token_tag`` ties it to the API token it was opened with, so changing
    the token ends every session.
    """

    __tablename__ = "console_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_tag: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_console_session_expires", "expires_at"),)

    def __repr__(self) -> str:
        return f"ConsoleSession(client={self.client!r}, expires_at={self.expires_at!r})"


class LoginFailure(Base):
    """One failed sign-in by a client (its address): counted per minute to rate-limit guessing."""

    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_login_failure_client", "client", "failed_at"),)

    def __repr__(self) -> str:
        return f"LoginFailure(client={self.client!r}, failed_at={self.failed_at!r})"
