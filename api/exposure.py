"""Where the API listens, and the refusal to serve without a token anywhere but loopback.

However the app is started (``tablebeat api``, ``uvicorn api.app:app``, gunicorn with
uvicorn workers), the check runs in the ASGI lifespan start-up. The addresses come from
the listening sockets the process already holds (gunicorn and ``uvicorn --workers`` bind
before the app starts) or, for a lone uvicorn that binds after start-up, from its config.
Every request is checked too (:func:`off_loopback`), so a server that reports neither still
never answers off loopback without a token.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from collections.abc import Callable
from typing import Any

from api.settings import ALLOW_OPEN_ENV, TOKEN_ENV, ApiSettings

#: Host names that always mean this machine (RFC 6761: ``*.localhost`` too).
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost`` names; False for anything else (0.0.0.0 included)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def off_loopback(server: tuple[str, int | None] | list[Any] | None) -> bool:
    """True when an ASGI ``scope["server"]`` is a TCP address that is not loopback.

    Real servers report the socket's IP address; a Unix socket path or a test client's
    made-up name is not an IP address and counts as local.
    """
    if not server:
        return False
    try:
        address = ipaddress.ip_address(str(server[0]).strip("[]"))
    except ValueError:
        return False
    return not address.is_loopback


def listening_addresses() -> list[tuple[str, int]]:
    """(host, port) of every TCP socket this process listens on (inherited ones included)."""
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return []
    found: list[tuple[str, int]] = []
    for name in names:
        try:
            fd = int(name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            # A duplicate of the descriptor: closing it leaves the server's socket open.
            with socket.socket(fileno=os.dup(fd)) as sock:
                if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                    continue
                if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    continue
                host, port = sock.getsockname()[:2]
                found.append((str(host), int(port)))
        except (OSError, ValueError):
            continue
    return found


def _server_config(receive: Callable[..., Any]) -> Any:
    """uvicorn's ``Config``: its lifespan ``receive`` is a method of an object holding it.

    Wrappers on the way (FastAPI's telemetry) close over the server's ``receive``; follow them.
    """
    for _ in range(8):
        config = getattr(getattr(receive, "__self__", None), "config", None)
        if config is not None:
            return config
        code, cells = getattr(receive, "__code__", None), getattr(receive, "__closure__", None)
        if code is None or not cells:
            return None
        inner = dict(zip(code.co_freevars, cells, strict=False)).get("receive")
        if inner is None:
            return None
        receive = inner.cell_contents
    return None


def configured_addresses(receive: Callable[..., Any]) -> list[tuple[str, int]]:
    """The host:port a lone uvicorn is about to bind (it binds after the lifespan start-up)."""
    config = _server_config(receive)
    if config is None or getattr(config, "fd", None) is not None or getattr(config, "uds", None):
        return []
    host, port = getattr(config, "host", None), getattr(config, "port", None)
    return [(str(host), int(port))] if isinstance(host, str) and isinstance(port, int) else []


def refusal(address: str) -> str:
    """The one line logged when the API will not serve open on ``address``."""
    return (
        f"tablebeat: refusing to serve the API on {address} without {TOKEN_ENV}: set {TOKEN_ENV} "
        f"(clients then send 'Authorization: Bearer <token>'), listen on 127.0.0.1, "
        f"or set {ALLOW_OPEN_ENV}=1 to serve it unauthenticated"
    )


def start_up_problem(settings: ApiSettings, receive: Callable[..., Any]) -> str | None:
    """Why the app must not start (an open API on a non-loopback address), or None."""
    if settings.api_token is not None or settings.allow_open:
        return None
    addresses = listening_addresses() or configured_addresses(receive)
    for host, port in addresses:
        if not is_loopback(host):
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            return refusal(shown)
    return None
