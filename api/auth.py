"""Bearer-token authentication: every endpoint but ``/health`` depends on :func:`require_token`."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.settings import TOKEN_ENV

# auto_error=False: without a configured token the header is optional, and a missing
# header must give our 401 (with WWW-Authenticate), not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description=f"The value of {TOKEN_ENV}, when it is set.")

logger = logging.getLogger("tablebeat.api")


def client_of(request: Request) -> str:
    """The client's address, as the server saw it (behind a proxy: as the proxy headers say)."""
    return request.client.host if request.client else "unknown"


def bearer_matches(request: Request) -> bool:
    """True when the request carries ``Authorization: Bearer <the configured token>``.

    A wrong token is a failed sign-in of the client, counted with the console's
    (:class:`api.console.sessions.LoginLimiter`); past the limit the answer is 429 before
    the token is even compared, so guessing through the API is as slow as through the form.
    """
    expected: str | None = request.app.state.settings.api_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if expected is None or scheme.lower() != "bearer" or not given:
        return False
    limiter = request.app.state.login_limiter
    client = client_of(request)
    wait = limiter.retry_after(client)
    if wait is not None:
        logger.warning("bearer token from %s refused: %d failures in the last minute", client, limiter.limit)
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many wrong tokens from {client}; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    # Constant-time comparison: the time taken says nothing about how much of the token matched.
    if hmac.compare_digest(given.encode(), expected.encode()):
        return True
    failures = limiter.failed(client)
    logger.warning("wrong bearer token from %s (%d of %d a minute)", client, failures, limiter.limit)
    return False


def has_credentials(request: Request) -> bool:
    """True when no token is configured, or the request is authenticated (bearer or console session)."""
    from api.console.security import is_signed_in  # the console builds on this module

    return is_signed_in(request)


def require_token(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Reject the request unless it carries ``Authorization: Bearer <TABLEBEAT_API_TOKEN>``.

    Nothing is checked when no token is configured (the API then serves on loopback only).
    ``_credentials`` only declares the scheme in the OpenAPI docs.
    """
    if request.app.state.settings.api_token is None or bearer_matches(request):
        return
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or wrong bearer token (Authorization: Bearer <TABLEBEAT_API_TOKEN>)",
        headers={"WWW-Authenticate": "Bearer"},
    )
