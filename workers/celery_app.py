"""The Celery application shared by beat and workers."""

from __future__ import annotations

from celery import Celery

app = Celery("tablebeat")
app.config_from_object("celeryconfig")
