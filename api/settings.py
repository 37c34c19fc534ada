"""Settings of the API process, read once at start-up (fields of :class:`conf.settings.Settings`)."""

from __future__ import annotations

from dataclasses import dataclass

from conf.profiles import load_settings
from conf.settings import Settings

#: Environment variable holding the bearer token; unset means no authentication.
TOKEN_ENV = "TABLEBEAT_API_TOKEN"
#: ``1`` lets an API without a token serve on a non-loopback address (it refuses otherwise).
ALLOW_OPEN_ENV = "TABLEBEAT_ALLOW_OPEN"
#: Extra ``Host`` names the API answers (comma-separated; ``.example.com`` = it and its subdomains).
ALLOWED_HOSTS_ENV = "TABLEBEAT_ALLOWED_HOSTS"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The process's settings plus the API's own, as the app uses them (``api_token=None``: no auth)."""

    service: Settings
    api_token: str | None = None
    allow_open: bool = False
    allowed_hosts: tuple[str, ...] = ()
    session_seconds: int = 12 * 3600
    login_failures_per_minute: int = 5

    @classmethod
    def from_env(cls) -> ApiSettings:
        """From the profile and the environment (:func:`conf.profiles.load_settings`)."""
        return cls.of(load_settings())

    @classmethod
    def of(cls, settings: Settings) -> ApiSettings:
        """The API's view of ``settings`` (``TABLEBEAT_API_TOKEN`` and the other API settings)."""
        return cls(
            service=settings,
            api_token=settings.api_token or None,
            allow_open=settings.allow_open,
            allowed_hosts=settings.allowed_hosts,
            session_seconds=int(settings.session_hours * 3600),
            login_failures_per_minute=settings.login_failures_per_minute,
        )
