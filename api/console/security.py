"""Console sign-in and CSRF protection.

Sign-in: the login form takes the API's bearer token (``TABLEBEAT_API_TOKEN``) and sets a
``Secure; HttpOnly; SameSite=Strict`` session cookie: a random value whose hash is a row of
``console_session`` (:mod:`api.console.sessions`), so signing out ends it in every API
process, it expires (``TABLEBEAT_SESSION_HOURS``), and changing the token ends it. Failed
sign-ins are rate-limited per client. Requests may also send ``Authorization: Bearer <token>``
as the API does. With no token configured the console is open (on loopback only).

CSRF: a signed double-submit token. A random ``tb_csrf`` cookie (same attributes) is set on
the first page; every state-changing form carries ``HMAC(key, cookie)`` in ``csrf_token``,
and POSTs whose field does not match, or whose ``Origin`` is another site, are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from fastapi import Request, Response

from api.auth import bearer_matches, client_of
from api.console.sessions import SessionStore, token_tag

SESSION_COOKIE = "tb_session"
CSRF_COOKIE = "tb_csrf"
CSRF_FIELD = "csrf_token"
#: Lifetime of the CSRF cookie (sessions have their own, in the database).
CSRF_COOKIE_SECONDS = 12 * 3600


def _api_token(request: Request) -> str | None:
    token: str | None = request.app.state.settings.api_token
    return token


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _csrf_key(request: Request) -> bytes:
    # The same in every API process (gunicorn -w 4 serves one browser from any of them). Without
    # a token the key is public and the check is a plain double submit: still sound, as another
    # site can neither read nor set this origin's SameSite=Strict, HttpOnly cookie.
    token = _api_token(request) or ""
    return hashlib.sha256(b"tablebeat-console-csrf\0" + token.encode()).digest()


def cookie_options() -> dict[str, Any]:
    return {"httponly": True, "secure": True, "samesite": "strict", "path": "/"}


# --- sign-in ------------------------------------------------------------------------------


def auth_required(request: Request) -> bool:
    return _api_token(request) is not None


def token_matches(request: Request, given: str) -> bool:
    expected = _api_token(request)
    return expected is None or hmac.compare_digest(given.encode(), expected.encode())


def sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


def new_session(request: Request) -> str:
    """Open a session for this browser; the cookie value to set."""
    return sessions(request).create(token_tag(_api_token(request) or ""), client_of(request))


def end_session(request: Request) -> bool:
    """Revoke this browser's session (server-side); True if it had one."""
    return sessions(request).revoke(request.cookies.get(SESSION_COOKIE, ""))


def is_signed_in(request: Request) -> bool:
    """True when no token is configured, or the session cookie or bearer header is valid."""
    token = _api_token(request)
    if token is None or bearer_matches(request):
        return True
    return sessions(request).valid(request.cookies.get(SESSION_COOKIE, ""), token_tag(token))


# --- CSRF ---------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The token forms of this page carry; creates the browser's CSRF cookie when it has none."""
    seed = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf_seed", None)
    if not seed:
        seed = secrets.token_urlsafe(24)
        request.state.new_csrf_seed = seed
    return _sign(_csrf_key(request), "csrf:" + seed)


def attach_csrf_cookie(request: Request, response: Response) -> None:
    """Set the CSRF cookie if :func:`csrf_token` created one for this request."""
    seed = getattr(request.state, "new_csrf_seed", None)
    if seed:
        response.set_cookie(CSRF_COOKIE, seed, max_age=CSRF_COOKIE_SECONDS, **cookie_options())


def csrf_problem(request: Request, submitted: str | None) -> str | None:
    """Why this POST must be refused, or None when its CSRF token and origin are right."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        return f"the form was sent from another site ({origin})"
    seed = request.cookies.get(CSRF_COOKIE)
    if not seed:
        return "the CSRF cookie is missing; reload the page and send the form again"
    if not submitted or not hmac.compare_digest(submitted, _sign(_csrf_key(request), "csrf:" + seed)):
        return "the form's CSRF token is missing or wrong; reload the page and send the form again"
    return None
