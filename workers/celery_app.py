"""The Celery application shared by beat and workers."""

from __future__ import annotations

import sys

from celery import Celery

from protocol.signing import SigningError, enable_signing

app = Celery("tablebeat")
app.config_from_object("celeryconfig")
try:
    enable_signing(app)  # only when TABLEBEAT_SIGNING_* are set
except SigningError as exc:
    sys.exit(f"tablebeat: invalid configuration: {exc}")
