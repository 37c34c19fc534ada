"""Celery settings for tablebeat, read from environment variables.

Every tablebeat-specific key is namespaced ``tablebeat_*``; the scheduler and the
workers read them once into typed settings objects.
"""

from __future__ import annotations

import os
from pathlib import Path

from models.engine import database_url

_here = Path.cwd()

# --- broker -----------------------------------------------------------------
# The embedded default keeps messages in a SQLite file so the demo needs no server.
broker_url = os.environ.get("TABLEBEAT_BROKER_URL") or f"sqla+sqlite:///{_here / 'tablebeat-broker.db'}"
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # keep reconnecting through broker outages
broker_transport_options = {
    # Redis: how long an un-acked (acks_late) message waits before redelivery to another worker.
    "visibility_timeout": int(os.environ.get("TABLEBEAT_VISIBILITY_TIMEOUT_SECONDS", "3600")),
}

# Runs are recorded in execute_task; a Celery result backend would be a second copy.
task_ignore_result = True
result_backend = None

# --- time ---------------------------------------------------------------------
timezone = os.environ.get("TABLEBEAT_TIMEZONE", "UTC")
enable_utc = True

# --- beat -----------------------------------------------------------------------
beat_scheduler = "scheduler.beat:SqlScheduler"
beat_max_loop_interval = 5

# --- workers / Flower ----------------------------------------------------------------
worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = True
worker_log_format = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
worker_task_log_format = (
    "[%(asctime)s: %(levelname)s/%(processName)s] [task_key=%(task_key)s trace_id=%(trace_id)s] %(message)s"
)

# --- tablebeat ---------------------------------------------------------------------
tablebeat_database_url = database_url()
tablebeat_refresh_seconds = float(os.environ.get("TABLEBEAT_REFRESH_SECONDS", "10"))
tablebeat_poll_seconds = float(os.environ.get("TABLEBEAT_POLL_SECONDS", "0.5"))
tablebeat_misfire_grace_seconds = int(os.environ.get("TABLEBEAT_MISFIRE_GRACE_SECONDS", "60"))
tablebeat_job_modules = [m for m in os.environ.get("TABLEBEAT_JOB_MODULES", "workers.examples").split(",") if m]
