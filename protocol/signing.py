"""Optional Celery message signing (the ``auth`` serializer) for every tablebeat process.

Set all three of ``TABLEBEAT_SIGNING_KEY`` (this process's PEM private key),
``TABLEBEAT_SIGNING_CERT`` (its PEM certificate) and ``TABLEBEAT_SIGNING_CERT_STORE`` (a
directory or file of the certificates whose signatures are trusted). Then beat, the API's
run-now and workers' own sends sign every task message, and workers refuse any message not
signed by a trusted certificate, so a broker user without a key cannot order a run.

Celery signs the message body (arguments, including tablebeat's run id and trace ID), not
its headers; see docs/security.md for what that leaves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

KEY_ENV = "TABLEBEAT_SIGNING_KEY"
CERT_ENV = "TABLEBEAT_SIGNING_CERT"
STORE_ENV = "TABLEBEAT_SIGNING_CERT_STORE"
NAMES = (KEY_ENV, CERT_ENV, STORE_ENV)


class SigningError(ValueError):
    """A signing setting is missing or names no file; the message names the variable."""


def signing_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Celery settings that turn signing on, or ``{}`` when none of the variables is set.

    :raises SigningError: when only some are set, or one names nothing on disk.
    """
    env = os.environ if environ is None else environ
    values = {name: env.get(name, "").strip() for name in NAMES}
    if not any(values.values()):
        return {}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise SigningError(f"{', '.join(missing)}: must be set too, to sign messages ({', '.join(NAMES)})")
    for name in (KEY_ENV, CERT_ENV):
        if not os.path.isfile(values[name]):
            raise SigningError(f"{name}: {values[name]!r} is not a file")
    if not os.path.exists(values[STORE_ENV]):
        raise SigningError(f"{STORE_ENV}: {values[STORE_ENV]!r} does not exist")
    return {
        "security_key": values[KEY_ENV],
        "security_certificate": values[CERT_ENV],
        "security_cert_store": values[STORE_ENV],
        "security_digest": "sha256",
        "task_serializer": "auth",
        "accept_content": ["auth"],
    }


def enable_signing(app: Any) -> bool:
    """Register the ``auth`` serializer for ``app`` when its settings ask for it; True if on.

    JSON stays readable for events (Flower), never for task messages: a worker's task
    consumer accepts ``auth`` only.
    """
    if app.conf.task_serializer != "auth":
        return False
    from celery.exceptions import ImproperlyConfigured, SecurityError

    try:
        # "auth" is registered by the call itself, after the others are disabled; JSON stays for events.
        app.setup_security(allowed_serializers=["json"], serializer="json")
    except (SecurityError, ImproperlyConfigured, OSError, ValueError) as exc:
        names = f"{KEY_ENV}, {CERT_ENV}, {STORE_ENV} (a folder of certificates only)"
        raise SigningError(f"{names}: {str(exc).splitlines()[0]}") from exc
    return True
