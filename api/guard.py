"""Checks every request passes before any route sees it, in every mode (token or not).

- ``Host`` must be a loopback name, the address the request arrived on, or one listed in
  ``TABLEBEAT_ALLOWED_HOSTS``; others get 400. This is what defeats DNS rebinding: a page
  on ``rebind.evil.example`` that resolves to 127.0.0.1 still sends its own name.
- A state-changing request (POST, PUT, PATCH, DELETE) sent by a browser from another site
  (``Sec-Fetch-Site`` other than ``same-origin``/``none``, or an ``Origin`` that is not this
  host) gets 403, whatever it carries.
- Without a token (and without ``TABLEBEAT_ALLOW_OPEN=1``) nothing is answered on a
  non-loopback address: the app refuses to start there, and each request is checked again.

The API's own routes also require a JSON body type (:func:`require_json`), which a
cross-site HTML form cannot send; the console's forms carry a CSRF token instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from starlette.types import ASGIApp, Receive, Scope, Send

from api import exposure
from api.settings import ALLOWED_HOSTS_ENV, ApiSettings

logger = logging.getLogger("tablebeat.api")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header: no port, no IPv6 brackets, lower case."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    name, _, _port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    return name.rstrip(".")


def host_allowed(name: str, server: Any, allowed: tuple[str, ...]) -> bool:
    """Loopback names, the address the request arrived on, and the configured names."""
    if exposure.is_loopback(name):
        return True
    if server and name == str(server[0]).strip("[]").lower():
        return True
    for pattern in allowed:
        if (
            pattern == "*"
            or name == pattern
            or (pattern.startswith(".") and (name.endswith(pattern) or name == pattern[1:]))
        ):
            return True
    return False


def cross_site_problem(method: str, headers: dict[str, str]) -> str | None:
    """Why a state-changing request looks sent by another site's page, or None."""
    if method in SAFE_METHODS:
        return None
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in SAME_SITE_FETCHES:
        return f"refused: the request was sent from another site (Sec-Fetch-Site: {fetch_site})"
    origin = headers.get("origin")
    if origin is not None:
        if origin.strip().lower() == "null":
            return "refused: the request was sent from another site (Origin: null)"
        if urlsplit(origin.strip()).netloc.lower() != headers.get("host", "").strip().lower():
            return f"refused: the request was sent from another site (Origin: {origin})"
    return None


class RequestGuard:
    """Pure ASGI middleware: start-up exposure check, Host allow-list, cross-site writes."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refused = self._problem(scope, headers)
        if refused is None:
            await self.app(scope, receive, send)
            return
        code, detail = refused
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
            return
        body = json.dumps({"detail": detail, "field": None}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _problem(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        server = scope.get("server")
        if self.settings.api_token is None and not self.settings.allow_open and exposure.off_loopback(server):
            assert server is not None  # off_loopback is False for None
            return status.HTTP_403_FORBIDDEN, exposure.refusal(f"{server[0]}:{server[1]}")
        name = host_name(headers.get("host", ""))
        if not host_allowed(name, server, self.settings.allowed_hosts):
            return (
                status.HTTP_400_BAD_REQUEST,
                f"Host: {name!r} is not a name this API answers to; add it to {ALLOWED_HOSTS_ENV}",
            )
        problem = cross_site_problem(scope.get("method", "GET").upper(), headers)
        if problem is not None:
            logger.warning("%s %s from %s: %s", scope.get("method"), scope.get("path"), _client(scope), problem)
            return status.HTTP_403_FORBIDDEN, problem
        return None

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = exposure.start_up_problem(self.settings, receive)
        if problem is None:
            await self.app(scope, receive, send)
            return
        # Answer the server's start-up message ourselves: it logs our line and exits non-zero
        # (raising after "failed" is the ASGI way to end the lifespan; servers print no traceback).
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": problem})
        raise RuntimeError(problem)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def require_json(request: Request) -> None:
    """A state-changing API request must declare a JSON body, which no cross-site HTML form can."""
    if request.method in SAFE_METHODS:
        return
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return
    raise HTTPException(
        status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        detail=f"Content-Type: must be application/json for {request.method}, got {media_type or 'none'!r}",
    )
