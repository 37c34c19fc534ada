"""Console sessions and the sign-in rate limit, kept in the database for every API process.

A session cookie is 32 random bytes; the ``console_session`` row holds its SHA-256, when it
expires, and a tag of the API token it was opened with. Signing out deletes the row, so the
cookie is dead everywhere at once; so is every session once the token changes.

Failed sign-ins are rows of ``login_failure``: a client (its address) with
``limit`` failures in the last minute is answered 429 until the oldest one is a minute old,
whether its next guess is right or not.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from models import ConsoleSession, LoginFailure

WINDOW = timedelta(minutes=1)

logger = logging.getLogger("tablebeat.api")


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def token_tag(token: str) -> str:
    """Names the API token without revealing it (a session opened under another token is dead)."""
    return hmac.new(token.encode(), b"tablebeat console session", hashlib.sha256).hexdigest()


class SessionStore:
    """Create, check and revoke console sessions."""

    def __init__(self, engine: Engine, lifetime_seconds: int) -> None:
        self.engine = engine
        self.lifetime = timedelta(seconds=lifetime_seconds)

    def create(self, tag: str, client: str) -> str:
        """A new session's cookie value; expired rows are swept on the way."""
        cookie = secrets.token_urlsafe(32)
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
            conn.execute(
                insert(ConsoleSession).values(
                    id_hash=_digest(cookie),
                    token_tag=tag,
                    client=client[:64],
                    created_at=now,
                    expires_at=now + self.lifetime,
                )
            )
        return cookie

    def valid(self, cookie: str, tag: str) -> bool:
        """True while the session exists, has not expired and belongs to the current token."""
        if not cookie:
            return False
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ConsoleSession.token_tag, ConsoleSession.expires_at).where(
                    ConsoleSession.id_hash == _digest(cookie)
                )
            ).first()
        return row is not None and row.expires_at > _now() and hmac.compare_digest(row.token_tag, tag)

    def revoke(self, cookie: str) -> bool:
        """End the session; True if there was one."""
        if not cookie:
            return False
        with self.engine.begin() as conn:
            return conn.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == _digest(cookie))).rowcount > 0


class LoginLimiter:
    """At most ``limit`` failed sign-ins per client per minute."""

    def __init__(self, engine: Engine, limit: int) -> None:
        self.engine = engine
        self.limit = limit

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may now."""
        since = _now() - WINDOW
        try:
            with self.engine.connect() as conn:
                count, oldest = conn.execute(
                    select(func.count(), func.min(LoginFailure.failed_at)).where(
                        LoginFailure.client == client[:64], LoginFailure.failed_at > since
                    )
                ).one()
        except SQLAlchemyError as exc:
            # No database, no count: the token is still checked, only the limit is off meanwhile.
            logger.warning("sign-in limit not checked (database unreachable: %s)", type(exc).__name__)
            return None
        if count < self.limit or oldest is None:
            return None
        return max(1, int((oldest - since).total_seconds()) + 1)

    def failed(self, client: str) -> int:
        """Record a failure; the client's failures in the last minute, this one included."""
        now = _now()
        try:
            return self._record(client, now)
        except SQLAlchemyError as exc:
            logger.warning("failed sign-in not counted (database unreachable: %s)", type(exc).__name__)
            return 0

    def _record(self, client: str, now: datetime) -> int:
        with self.engine.begin() as conn:
            conn.execute(delete(LoginFailure).where(LoginFailure.failed_at < now - WINDOW))
            conn.execute(insert(LoginFailure).values(client=client[:64], failed_at=now))
            return int(
                conn.execute(
                    select(func.count()).where(
                        LoginFailure.client == client[:64], LoginFailure.failed_at > now - WINDOW
                    )
                ).scalar_one()
            )

    def succeeded(self, client: str) -> None:
        """Forget the client's failures."""
        with self.engine.begin() as conn:
            conn.execute(delete(LoginFailure).where(LoginFailure.client == client[:64]))
