"""Minimal Django settings for django-celery-beat in the comparison (database from ``BENCH_PEER_DB_URL``)."""

from __future__ import annotations

import os

import pymysql
from sqlalchemy.engine import make_url

pymysql.install_as_MySQLdb()

_url = make_url(os.environ["BENCH_PEER_DB_URL"])
SECRET_KEY = "tablebeat-bench"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_celery_beat"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": _url.database,
        "USER": _url.username or "root",
        "PASSWORD": _url.password or "",
        "HOST": _url.host or "127.0.0.1",
        "PORT": str(_url.port or 3306),
        "OPTIONS": {"charset": "utf8mb4"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
