"""The one settings object of tablebeat: every setting, its single default and its validation.

:class:`Settings` is built once per process (``conf.profiles.load_settings``: profile file, then
environment) and handed to the code that needs it: beat, workers, alerts, the service, the API.
Each field has one profile key (``refresh_seconds``) and one environment variable
(``TABLEBEAT_REFRESH_SECONDS``). Values are checked when the object is built, however it is built,
so a bad one raises :class:`SettingsError` whose message starts with the variable's name::

    TABLEBEAT_REFRESH_SECONDS: must be a positive number, got 'abc'

Standard library and ``conf.urls`` only: ``celeryconfig`` imports this before Celery is configured.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conf.urls import parse_database_url


class SettingsError(ValueError):
    """A setting is missing or invalid; the message starts with the variable's name."""


# --- parsers: raw TOML, environment or Python value -> typed value; ValueError says what is expected ---


def _number(raw: Any, expected: str) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"must be {expected}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"must be {expected}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"must be {expected}")
    return value


def _positive_float(raw: Any) -> float:
    value = _number(raw, "a positive number")
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_float(raw: Any) -> float:
    value = _number(raw, "a number >= 0")
    if value < 0:
        raise ValueError("must be a number >= 0")
    return value


def _whole(raw: Any, expected: str) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"must be {expected}")
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ValueError(f"must be {expected}") from None


def _positive_int(raw: Any) -> int:
    value = _whole(raw, "a positive whole number")
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _non_negative_int(raw: Any) -> int:
    value = _whole(raw, "a whole number >= 0")
    if value < 0:
        raise ValueError("must be a whole number >= 0")
    return value


def _timezone_name(raw: Any) -> str:
    name = str(raw).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as 'UTC' or 'Europe/Berlin'") from None
    return name


def _database_url(raw: Any) -> str:
    """A database URL; empty means the embedded SQLite file ``./tablebeat.db``."""
    url = str(raw or "").strip()
    if not url:
        return f"sqlite:///{Path.cwd() / 'tablebeat.db'}"
    try:
        parse_database_url(url)
    except ValueError as exc:
        # parse_database_url names TABLEBEAT_DATABASE_URL itself; keep only the reason.
        raise ValueError(str(exc).split(": ", 1)[-1]) from None
    return url


_BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp", "memory", "sqla+", "filesystem", "sentinel")


def _broker_url(raw: Any) -> str:
    """A broker URL; empty means the embedded SQLite-backed broker ``./tablebeat-broker.db``."""
    url = str(raw or "").strip()
    if not url:
        return f"sqla+sqlite:///{Path.cwd() / 'tablebeat-broker.db'}"
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme or not any(scheme == s or scheme.startswith(s) for s in _BROKER_SCHEMES):
        raise ValueError("must be a broker URL such as 'redis://host:6379/0' or 'amqp://user:pass@host//'")
    return url


def _optional_http_url(raw: Any) -> str:
    url = str(raw).strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL (or empty to turn it off)")
    return url.rstrip("/")


def _module_list(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    modules = tuple(str(m).strip() for m in items if str(m).strip())
    for name in modules:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(f"must be comma-separated module names; {name!r} is not one")
    return modules


def _port(raw: Any) -> int:
    value = _whole(raw, "a TCP port 1-65535, or 0 for off")
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port 1-65535, or 0 for off")
    return value


def _host(raw: Any) -> str:
    host = str(raw).strip()
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise ValueError("must be an address to listen on, such as '127.0.0.1' or '0.0.0.0'")
    return host


def _name_list(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _log_format(raw: Any) -> str:
    value = str(raw).strip().lower()
    if value not in ("text", "json"):
        raise ValueError("must be 'text' or 'json'")
    return value


def _switch(raw: Any) -> bool:
    value = str(raw).strip().lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no", ""):
        return False
    raise ValueError("must be on or off (1/0, true/false)")


def _log_level(raw: Any) -> str:
    value = str(raw).strip().upper()
    value = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(value, value)
    if value not in ("", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return value


def _log_file(raw: Any) -> str:
    value = str(raw).strip()
    if value and not Path(value).is_absolute():
        raise ValueError("must be an absolute path (relative paths depend on where a process starts)")
    return value


def _text(raw: Any) -> str:
    return str(raw or "").strip()


def _host_names(raw: Any) -> tuple[str, ...]:
    names = tuple(name.lower().strip("[]").rstrip(".") for name in _name_list(raw))
    for name in names:
        if not name or any(c.isspace() or c in "/@" for c in name):
            raise ValueError(f"must be host names such as 'sched.example.com', '.example.com' or '*'; {name!r} is not")
    return names


def _setting(default: Any, parse: Callable[[Any], Any], doc: str, *, secret: bool = False) -> Any:
    """A field of :class:`Settings`: its default, parser and meaning (``secret``: kept out of ``repr``)."""
    return field(default=default, repr=not secret, metadata={"parse": parse, "doc": doc})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tablebeat setting, checked. ``Settings()`` is the built-in defaults."""

    #: Empty means the embedded SQLite file (resolved against the working directory when built).
    database_url: str = _setting("", _database_url, "SQLAlchemy URL of the task database", secret=True)
    broker_url: str = _setting("", _broker_url, "Celery broker URL", secret=True)
    refresh_seconds: float = _setting(10.0, _positive_float, "the most an SQL edit may take to be honoured")
    poll_seconds: float = _setting(0.5, _positive_float, "how often beat probes the change log")
    timezone: str = _setting("UTC", _timezone_name, "default zone of rows that name none")
    misfire_grace_seconds: int = _setting(60, _non_negative_int, "default lateness a fire may run with")
    job_modules: tuple[str, ...] = _setting(("workers.examples",), _module_list, "modules that register jobs")
    visibility_timeout_seconds: int = _setting(
        3600, _positive_int, "Redis: wait before an un-acked message is redelivered"
    )
    alert_webhook: str = _setting(
        "", _optional_http_url, "URL that failed/lost/expired runs are POSTed to", secret=True
    )
    alert_min_interval_seconds: float = _setting(300.0, _non_negative_float, "at most one alert per task this often")
    console_url: str = _setting("", _optional_http_url, "base URL of the console; alerts link to <url>/runs/<id>")
    metrics_port: int = _setting(0, _port, "port beat/worker serve Prometheus /metrics on (0 = off)")
    metrics_address: str = _setting("127.0.0.1", _host, "address the metrics port listens on")
    metrics_task_keys: tuple[str, ...] = _setting(
        (), _name_list, "task_keys that get their own 'task' label in metrics"
    )
    log_format: str = _setting("text", _log_format, "'text' or 'json' (one JSON object per line)")
    log_file: str = _setting("", _log_file, "absolute path beat and workers also write their log lines to")
    log_level: str = _setting("", _log_level, "DEBUG, INFO, WARNING, ERROR; overrides celery's -l when set")
    otel: bool = _setting(False, _switch, "OpenTelemetry spans for fires and runs (needs tablebeat[otel])")
    stale_claim_seconds: float = _setting(
        10.0, _positive_float, "a claimed fire left unpublished this long is republished by any beat"
    )
    worker_dead_seconds: float = _setting(
        30.0, _positive_float, "a worker silent this long is dead: its running rows become 'lost'"
    )
    heartbeat_seconds: float = _setting(5.0, _positive_float, "how often each worker stamps worker_heartbeat")
    lookahead_seconds: float = _setting(2.0, _positive_float, "fires due within this are claimed ahead of time")
    publish_batch_size: int = _setting(1000, _positive_int, "messages per pipelined publish batch")
    beat_dead_seconds: float = _setting(
        1.5, _positive_float, "a beat silent this long is dead or frozen: the others publish what it claimed"
    )
    pending_republish_seconds: float = _setting(
        120.0, _positive_float, "a run still pending this long after its publish is published once more"
    )
    pending_expire_seconds: float = _setting(
        900.0, _positive_float, "a run still pending this long after its instant is closed 'expired'"
    )
    claim_batch: int = _setting(2000, _positive_int, "due rows claimed per transaction")
    # --- the API and console (docs/security.md) ---
    api_token: str = _setting(
        "", _text, "bearer token of the API and the console's sign-in (empty: no auth, loopback only)", secret=True
    )
    allow_open: bool = _setting(False, _switch, "serve the API without a token on non-loopback addresses too")
    allowed_hosts: tuple[str, ...] = _setting(
        (), _host_names, "Host names the API answers besides loopback and its own address ('.example.com', '*')"
    )
    session_hours: float = _setting(12.0, _positive_float, "console sessions last this long from sign-in")
    login_failures_per_minute: int = _setting(
        5, _positive_int, "failed sign-ins (form or bearer) per client per minute before 429"
    )
    # --- message signing: all three or none (Celery's auth serializer; docs/security.md) ---
    signing_key: str = _setting("", _text, "PEM private key this process signs task messages with")
    signing_cert: str = _setting("", _text, "PEM certificate of signing_key")
    signing_cert_store: str = _setting("", _text, "folder (or file) of the certificates whose signatures are trusted")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                object.__setattr__(self, f.name, f.metadata["parse"](value))
            except ValueError as exc:
                raise SettingsError(f"{env_var(f.name)}: {exc}, got {show(value)}") from None
        self._check_signing()
        if self.heartbeat_seconds * 2 > self.worker_dead_seconds:
            raise SettingsError(
                "TABLEBEAT_WORKER_DEAD_SECONDS must be at least twice TABLEBEAT_HEARTBEAT_SECONDS "
                f"({self.worker_dead_seconds} < 2 x {self.heartbeat_seconds})"
            )

    def _check_signing(self) -> None:
        names = ("signing_key", "signing_cert", "signing_cert_store")
        given = {name: getattr(self, name) for name in names}
        if not any(given.values()):
            return
        missing = [env_var(name) for name, value in given.items() if not value]
        if missing:
            every = ", ".join(env_var(name) for name in names)
            raise SettingsError(f"{', '.join(missing)}: must be set too, to sign messages ({every})")
        for name in ("signing_key", "signing_cert"):
            if not Path(given[name]).is_file():
                raise SettingsError(f"{env_var(name)}: {given[name]!r} is not a file")
        if not Path(given["signing_cert_store"]).exists():
            raise SettingsError(f"{env_var('signing_cert_store')}: {given['signing_cert_store']!r} does not exist")

    @property
    def signing(self) -> bool:
        """True when task messages are signed (all three signing settings given)."""
        return bool(self.signing_key)

    @property
    def default_timezone(self) -> str:
        """The zone of rows that name none (the ``timezone`` setting)."""
        return self.timezone


@dataclass(frozen=True, slots=True)
class Setting:
    """One field of :class:`Settings` as the profile loader sees it."""

    key: str
    parse: Callable[[Any], Any]
    default: Any
    doc: str

    @property
    def env_var(self) -> str:
        return env_var(self.key)


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.metadata["parse"], f.default, f.metadata["doc"]) for f in dataclasses.fields(Settings)
)
SETTINGS_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


def env_var(key: str) -> str:
    """The environment variable of setting ``key``."""
    return f"TABLEBEAT_{key.upper()}"


def default(key: str) -> Any:
    """The built-in default of setting ``key``."""
    return SETTINGS_BY_KEY[key].default


def show(raw: Any) -> str:
    """``repr`` of a rejected value, shortened, with any URL password hidden."""
    text = re.sub(r"://[^/@\s]*@", "://***@", repr(raw))
    return text if len(text) <= 80 else text[:77] + "..."
