"""Celery settings for tablebeat: the ``APP_ENV`` profile (``conf/<env>.toml``), env vars override.

Every tablebeat-specific key is namespaced ``tablebeat_*``; the scheduler and the
workers read them once into typed settings objects.
"""

from __future__ import annotations

import sys
from pathlib import Path

from models.engine import database_url

_here = Path.cwd()

# --- profile (conf/profiles.py) ---------------------------------
# APP_ENV=local|test|online picks conf/<env>.toml; TABLEBEAT_* variables override it. A bad or
# missing setting stops start-up here with one line naming it, before Celery prints a traceback.
from conf.profiles import SettingsError, export_to_environ, load_profile  # noqa: E402

try:
    _profile = load_profile()
except SettingsError as _exc:
    sys.exit(f"tablebeat: invalid configuration: {_exc}")
export_to_environ(_profile)
app_env = _profile.name
# --- end profile ------------------------------------------------------------------

# --- broker -----------------------------------------------------------------
# The embedded default keeps messages in a SQLite file so the demo needs no server.
broker_url = _profile["broker_url"] or f"sqla+sqlite:///{_here / 'tablebeat-broker.db'}"
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # keep reconnecting through broker outages
# Redis: how long an un-acked (acks_late) message waits before redelivery to another worker.
# (The SQLAlchemy transport hands unknown options to create_engine, so only Redis gets it.)
# Kombu sweeps un-acked messages back only every interval x throttle seconds (default 10 x 10):
# sweep every quarter of the timeout (at most 10 s), so a crashed worker's acks_late message comes
# back within about visibility_timeout + interval.
broker_transport_options = (
    {
        "visibility_timeout": _profile["visibility_timeout_seconds"],
        "unacked_restore_interval": max(1, min(10, _profile["visibility_timeout_seconds"] // 4)),
        "unacked_restore_throttle": 1,
    }
    if broker_url.startswith(("redis://", "rediss://"))
    else {}
)

# Runs are recorded in execute_task; a Celery result backend would be a second copy.
task_ignore_result = True
result_backend = None

# --- time ---------------------------------------------------------------------
timezone = _profile["timezone"]
enable_utc = True

# --- beat -----------------------------------------------------------------------
beat_scheduler = "scheduler.beat:SqlScheduler"
beat_max_loop_interval = 5

# --- workers / Flower ----------------------------------------------------------------
# Celery's consumer, plus a failed record for a run whose message cannot be decoded.
worker_consumer = "workers.consumer:RecordingConsumer"
worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = True
worker_log_format = "[%(asctime)s: %(levelname)s/%(processName)s]%(trace)s %(message)s"
worker_task_log_format = "[%(asctime)s: %(levelname)s/%(processName)s]%(trace)s %(message)s"

# --- tablebeat ---------------------------------------------------------------------
tablebeat_database_url = _profile["database_url"] or database_url()
tablebeat_refresh_seconds = _profile["refresh_seconds"]
tablebeat_poll_seconds = _profile["poll_seconds"]
tablebeat_misfire_grace_seconds = _profile["misfire_grace_seconds"]
tablebeat_job_modules = _profile["job_modules"]
#: Beat and workers import the job modules at start-up (Celery's loader), not when ``workers`` is imported.
imports = tuple(tablebeat_job_modules)
tablebeat_alert_webhook = _profile["alert_webhook"]
tablebeat_alert_min_interval_seconds = _profile["alert_min_interval_seconds"]
tablebeat_console_url = _profile["console_url"]
tablebeat_metrics_port = _profile["metrics_port"]
tablebeat_metrics_address = _profile["metrics_address"]
tablebeat_metrics_task_keys = _profile["metrics_task_keys"]
tablebeat_log_format = _profile["log_format"]
tablebeat_otel = _profile["otel"]
if tablebeat_otel:
    from telemetry.otel import INSTALL_HINT, available  # noqa: E402

    if not available():
        sys.exit(f"tablebeat: invalid configuration: {INSTALL_HINT}")


# --- reliability knobs (environment only; issue 4) -------------------------------------
def _env_seconds(name: str, default: float) -> float:
    import os

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        sys.exit(f"tablebeat: invalid configuration: {name}: must be a positive number, got {raw!r}")
    return value


#: A claimed fire left unpublished this long is republished by any beat (the outbox sweep).
tablebeat_stale_claim_seconds = _env_seconds("TABLEBEAT_STALE_CLAIM_SECONDS", 10.0)
#: A beat silent this long is dead or frozen: the other beats publish the fires it had claimed.
tablebeat_beat_dead_seconds = _env_seconds("TABLEBEAT_BEAT_DEAD_SECONDS", 1.5)
#: A run still pending this long after its publish is published once more (its message may be lost).
tablebeat_pending_republish_seconds = _env_seconds("TABLEBEAT_PENDING_REPUBLISH_SECONDS", 120.0)
#: A run still pending this long after its instant is closed 'expired' (the run invariant's bound).
tablebeat_pending_expire_seconds = _env_seconds("TABLEBEAT_PENDING_EXPIRE_SECONDS", 900.0)
#: A worker silent this long is dead: its running rows become 'lost'.
tablebeat_worker_dead_seconds = _env_seconds("TABLEBEAT_WORKER_DEAD_SECONDS", 30.0)
#: How often each worker stamps worker_heartbeat.
tablebeat_heartbeat_seconds = _env_seconds("TABLEBEAT_HEARTBEAT_SECONDS", 5.0)
if tablebeat_heartbeat_seconds * 2 > tablebeat_worker_dead_seconds:
    sys.exit(
        "tablebeat: invalid configuration: TABLEBEAT_WORKER_DEAD_SECONDS must be at least twice "
        f"TABLEBEAT_HEARTBEAT_SECONDS ({tablebeat_worker_dead_seconds} < 2 x {tablebeat_heartbeat_seconds})"
    )


# --- message signing (optional: protocol/signing.py, docs/security.md) ------------------
# All of TABLEBEAT_SIGNING_KEY, _CERT, _CERT_STORE set: task messages use Celery's ``auth``
# serializer (security_key, security_certificate, security_cert_store, task_serializer,
# accept_content); the apps call protocol.signing.enable_signing after loading this module.
from protocol.signing import SigningError, signing_settings  # noqa: E402

try:
    globals().update(signing_settings())
except SigningError as _exc:
    sys.exit(f"tablebeat: invalid configuration: {_exc}")
