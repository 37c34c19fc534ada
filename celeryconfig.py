"""Celery settings for tablebeat: the ``APP_ENV`` profile (``conf/<env>.toml``), env vars override.

The settings are built once here (:func:`conf.profiles.load_settings`) and kept whole as
``tablebeat_settings``; beat and workers take them from there (``conf.celery.settings_of``).
A bad or missing setting stops start-up with one line naming it, before Celery prints a traceback.
"""

from __future__ import annotations

import sys

from conf.celery import celery_config
from conf.profiles import SettingsError, export_to_environ, load_profile

try:
    _profile = load_profile()
    _settings = _profile.settings()
except SettingsError as _exc:
    sys.exit(f"tablebeat: invalid configuration: {_exc}")
export_to_environ(_profile)
app_env = _profile.name

globals().update(celery_config(_settings))
if _settings.otel:
    from telemetry.otel import INSTALL_HINT, available

    if not available():
        sys.exit(f"tablebeat: invalid configuration: {INSTALL_HINT}")
