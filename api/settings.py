"""Settings of the API process, read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

from service.tasks import ServiceSettings

#: Environment variable holding the bearer token; unset means no authentication.
TOKEN_ENV = "TABLEBEAT_API_TOKEN"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The service's settings plus the API's own: the bearer token (``None`` = no auth)."""

    service: ServiceSettings
    api_token: str | None = None

    @classmethod
    def from_env(cls) -> ApiSettings:
        """``TABLEBEAT_API_TOKEN`` plus :meth:`ServiceSettings.from_env`."""
        return cls(service=ServiceSettings.from_env(), api_token=os.environ.get(TOKEN_ENV) or None)
