"""The Celery configuration of beat, workers and the service's publisher, derived from :class:`Settings`.

Plain values only (no Celery import), so ``celeryconfig`` and the service build the same configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conf.settings import Settings

#: The Celery setting holding the process's :class:`Settings`.
SETTINGS_KEY = "tablebeat_settings"
LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s]%(trace)s %(message)s"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings (lower-case names) for ``settings``."""
    broker_url = settings.broker_url
    redis = broker_url.startswith(("redis://", "rediss://"))
    visibility = settings.visibility_timeout_seconds
    return {
        # The one copy of tablebeat's own settings; code holding only a Celery app reads it with
        # settings_of(app.conf).
        SETTINGS_KEY: settings,
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # keep reconnecting through broker outages
        # Redis: how long an un-acked (acks_late) message waits before redelivery to another worker.
        # (The SQLAlchemy transport hands unknown options to create_engine, so only Redis gets it.)
        # Kombu sweeps un-acked messages back only every interval x throttle seconds (default 10 x 10):
        # sweep every quarter of the timeout (at most 10 s), so a crashed worker's acks_late message
        # comes back within about visibility_timeout + interval.
        "broker_transport_options": (
            {
                "visibility_timeout": visibility,
                "unacked_restore_interval": max(1, min(10, visibility // 4)),
                "unacked_restore_throttle": 1,
            }
            if redis
            else {}
        ),
        # Runs are recorded in execute_task; a Celery result backend would be a second copy.
        "task_ignore_result": True,
        "result_backend": None,
        "timezone": settings.timezone,
        "enable_utc": True,
        "beat_scheduler": "scheduler.beat:SqlScheduler",
        "beat_max_loop_interval": 5,
        # Celery's consumer, plus a failed record for a run whose message cannot be decoded.
        "worker_consumer": "workers.consumer:RecordingConsumer",
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": True,
        "worker_log_format": LOG_FORMAT,
        "worker_task_log_format": LOG_FORMAT,
        **signing_config(settings),
    }


def signing_config(settings: Settings) -> dict[str, Any]:
    """Celery's ``auth`` serializer settings when signing is on (the apps then call
    ``protocol.signing.enable_signing``); nothing otherwise."""
    if not settings.signing:
        return {}
    return {
        "security_key": settings.signing_key,
        "security_certificate": settings.signing_cert,
        "security_cert_store": settings.signing_cert_store,
        "security_digest": "sha256",
        "task_serializer": "auth",
        "accept_content": ["auth"],
    }


def settings_of(conf: Mapping[str, Any]) -> Settings:
    """The :class:`Settings` a Celery app was configured with (``celeryconfig``), else the profile's."""
    settings = conf.get(SETTINGS_KEY)
    if isinstance(settings, Settings):
        return settings
    from conf.profiles import load_settings

    return load_settings()
