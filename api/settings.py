"""Settings of the API process, read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

from conf.profiles import load_settings
from conf.settings import Settings

#: Environment variable holding the bearer token; unset means no authentication.
TOKEN_ENV = "TABLEBEAT_API_TOKEN"
#: ``1`` lets an API without a token serve on a non-loopback address (it refuses otherwise).
ALLOW_OPEN_ENV = "TABLEBEAT_ALLOW_OPEN"
#: Extra ``Host`` names the API answers (comma-separated; ``.example.com`` = it and its subdomains).
ALLOWED_HOSTS_ENV = "TABLEBEAT_ALLOWED_HOSTS"
#: Console sessions last this many hours from sign-in.
SESSION_HOURS_ENV = "TABLEBEAT_SESSION_HOURS"
#: Failed sign-ins (console form or a wrong bearer token) a client may make per minute before 429.
LOGIN_LIMIT_ENV = "TABLEBEAT_LOGIN_FAILURES_PER_MINUTE"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The service's settings plus the API's own: the bearer token (``None`` = no auth) and its guards."""

    service: Settings
    api_token: str | None = None
    allow_open: bool = False
    allowed_hosts: tuple[str, ...] = ()
    session_seconds: int = 12 * 3600
    login_failures_per_minute: int = 5

    @classmethod
    def from_env(cls) -> ApiSettings:
        """``TABLEBEAT_API_TOKEN`` and the API's other variables, plus the profile's and environment's settings."""
        return cls(
            service=load_settings(),
            api_token=os.environ.get(TOKEN_ENV) or None,
            allow_open=_flag(ALLOW_OPEN_ENV),
            allowed_hosts=tuple(
                h.strip().lower() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()
            ),
            session_seconds=int(_positive(SESSION_HOURS_ENV, 12.0) * 3600),
            login_failures_per_minute=int(_positive(LOGIN_LIMIT_ENV, 5)),
        )


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}: must be 1 or 0, got {raw!r}")


def _positive(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ValueError(f"{name}: must be a positive number, got {raw!r}")
    return value
