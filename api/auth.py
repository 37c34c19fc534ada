"""Bearer-token authentication: every endpoint but ``/health`` depends on :func:`require_token`."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.settings import TOKEN_ENV

# auto_error=False: without a configured token the header is optional, and a missing
# header must give our 401 (with WWW-Authenticate), not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description=f"The value of {TOKEN_ENV}, when it is set.")


def client_of(request: Request) -> str:
    """The client's address, as the server saw it (behind a proxy: as the proxy headers say)."""
    return request.client.host if request.client else "unknown"


def bearer_matches(request: Request) -> bool:
    """True when the request carries ``Authorization: Bearer <the configured token>``."""
    expected: str | None = request.app.state.settings.api_token
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if expected is None or scheme.lower() != "bearer":
        return False
    # Constant-time comparison: the time taken says nothing about how much of the token matched.
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def has_credentials(request: Request) -> bool:
    """True when no token is configured, or the request is authenticated (bearer or console session)."""
    from api.console.security import is_signed_in  # the console builds on this module

    return is_signed_in(request)


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Reject the request unless it carries ``Authorization: Bearer <TABLEBEAT_API_TOKEN>``.

    Nothing is checked when no token is configured (the API then serves on loopback only).
    """
    expected: str | None = request.app.state.settings.api_token
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (Authorization: Bearer <TABLEBEAT_API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
