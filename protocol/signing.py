"""Optional Celery message signing (the ``auth`` serializer) for every tablebeat process.

Set all three of ``TABLEBEAT_SIGNING_KEY`` (this process's PEM private key),
``TABLEBEAT_SIGNING_CERT`` (its PEM certificate) and ``TABLEBEAT_SIGNING_CERT_STORE`` (a
directory or file of the certificates whose signatures are trusted): :class:`conf.settings.Settings`
checks them and ``conf.celery.signing_config`` turns them into Celery's settings. Then beat, the API's
run-now and workers' own sends sign every task message, and workers refuse any message not
signed by a trusted certificate, so a broker user without a key cannot order a run.

Celery signs the message body (arguments, including tablebeat's run id and trace ID), not
its headers; see docs/security.md for what that leaves.
"""

from __future__ import annotations

from typing import Any

KEY_ENV = "TABLEBEAT_SIGNING_KEY"
CERT_ENV = "TABLEBEAT_SIGNING_CERT"
STORE_ENV = "TABLEBEAT_SIGNING_CERT_STORE"


class SigningError(ValueError):
    """The signing files could not be used; the message names the variables."""


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
