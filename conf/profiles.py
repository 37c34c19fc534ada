"""Settings profiles: ``APP_ENV`` picks ``conf/<env>.toml``; ``TABLEBEAT_*`` variables override it.

Each setting has one key in the TOML files (``refresh_seconds``) and one environment variable
(``TABLEBEAT_REFRESH_SECONDS``). A value is taken from the environment if set and non-empty,
else from the profile file, else from the built-in default. Every value is parsed and checked
here, once; a bad or missing one raises :class:`SettingsError` whose message starts with the
variable's name, so start-up stops with a line an operator can act on::

    TABLEBEAT_REFRESH_SECONDS: must be a positive number, got 'abc'

This module uses the standard library only (plus ``models.engine`` for URL checks), because
``celeryconfig`` imports it before the Celery app is configured.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conf.urls import parse_database_url

PROFILES = ("local", "test", "online")
DEFAULT_PROFILE = "local"
#: The profile files; ``TABLEBEAT_CONF_DIR`` points elsewhere (e.g. a mounted volume).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
#: Keys of a profile file that are not settings.
_META_KEYS = frozenset({"required"})


class SettingsError(ValueError):
    """A setting is missing or invalid; the message starts with the variable's name."""


# --- parsers: raw TOML or environment value -> typed value; ValueError says what is expected ---


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


def _timezone(raw: Any) -> str:
    name = str(raw).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as 'UTC' or 'Europe/Berlin'") from None
    return name


def _database_url(raw: Any) -> str:
    url = str(raw).strip()
    try:
        parse_database_url(url)
    except ValueError as exc:
        # parse_database_url names TABLEBEAT_DATABASE_URL itself; keep only the reason.
        raise ValueError(str(exc).split(": ", 1)[-1]) from None
    return url


_BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp", "memory", "sqla+", "filesystem", "sentinel")


def _broker_url(raw: Any) -> str:
    url = str(raw).strip()
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


def _module_list(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    modules = [str(m).strip() for m in items if str(m).strip()]
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


def _name_list(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


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


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its profile key, how its value is parsed, and its built-in default."""

    key: str
    parse: Callable[[Any], Any]
    #: ``None`` means "computed by the code that reads it" (the embedded SQLite files).
    default: Any
    doc: str

    @property
    def env_var(self) -> str:
        return f"TABLEBEAT_{self.key.upper()}"


SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", _database_url, None, "SQLAlchemy URL of the task database"),
    Setting("broker_url", _broker_url, None, "Celery broker URL"),
    Setting("refresh_seconds", _positive_float, 10.0, "the most an SQL edit may take to be honoured"),
    Setting("poll_seconds", _positive_float, 0.5, "how often beat probes the change log"),
    Setting("timezone", _timezone, "UTC", "default zone of rows that name none"),
    Setting("misfire_grace_seconds", _non_negative_int, 60, "default lateness a fire may run with"),
    Setting("job_modules", _module_list, ["workers.examples"], "modules that register jobs"),
    Setting("visibility_timeout_seconds", _positive_int, 3600, "Redis: wait before an un-acked message is redelivered"),
    Setting("alert_webhook", _optional_http_url, "", "URL that failed/lost/expired runs are POSTed to"),
    Setting("alert_min_interval_seconds", _non_negative_float, 300.0, "at most one alert per task this often"),
    Setting("console_url", _optional_http_url, "", "base URL of the console; alerts link to <url>/runs/<id>"),
    Setting("metrics_port", _port, 0, "port beat/worker serve Prometheus /metrics on (0 = off)"),
    Setting("metrics_address", _host, "127.0.0.1", "address the metrics port listens on"),
    Setting("metrics_task_keys", _name_list, [], "task_keys that get their own 'task' label in metrics"),
    Setting("log_format", _log_format, "text", "'text' or 'json' (one JSON object per line)"),
    Setting("otel", _switch, False, "OpenTelemetry spans for fires and runs (needs tablebeat[otel])"),
)
SETTINGS_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
#: Settings :func:`export_to_environ` publishes.
EXPORTED_KEYS = ("database_url", "broker_url")


@dataclass(frozen=True, slots=True)
class Profile:
    """The resolved settings of one profile: typed values, and where each came from."""

    name: str
    path: Path
    values: Mapping[str, Any]
    #: key -> "env", "file" or "default".
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def profile_name(environ: Mapping[str, str]) -> str:
    """The profile ``APP_ENV`` selects (default ``local``); raises for an unknown name."""
    name = (environ.get("APP_ENV") or DEFAULT_PROFILE).strip().lower()
    if name not in PROFILES:
        raise SettingsError(f"APP_ENV: unknown profile {name!r}; use one of {', '.join(PROFILES)}")
    return name


def read_profile_file(path: Path) -> dict[str, Any]:
    """The raw contents of a profile file; raises for a missing file, bad TOML or unknown keys."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"APP_ENV: profile file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(SETTINGS_BY_KEY) - _META_KEYS)
    if unknown:
        raise SettingsError(f"{path}: unknown setting {unknown[0]!r}; known settings are {', '.join(SETTINGS_BY_KEY)}")
    required = data.get("required", [])
    if not isinstance(required, list) or any(r not in SETTINGS_BY_KEY for r in required):
        raise SettingsError(f"{path}: 'required' must be a list of setting names, got {required!r}")
    return data


def load_profile(environ: Mapping[str, str] | None = None, conf_dir: Path | None = None) -> Profile:
    """Resolve every setting for the profile ``APP_ENV`` names.

    :param environ: the environment to read (default ``os.environ``).
    :param conf_dir: folder of the profile files (default ``TABLEBEAT_CONF_DIR`` or ``conf/``).
    :raises SettingsError: unknown profile, unreadable file, or a missing or invalid setting.
    """
    env = os.environ if environ is None else environ
    name = profile_name(env)
    folder = conf_dir or Path(env.get("TABLEBEAT_CONF_DIR") or CONF_DIR)
    path = folder / f"{name}.toml"
    data = read_profile_file(path)
    required = data.get("required", [])
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        raw_env = env.get(setting.env_var, "")
        if raw_env.strip():
            raw, source, where = raw_env, "env", "environment"
        elif setting.key in data:
            raw, source, where = data[setting.key], "file", path.name
        elif setting.key in required:
            raise SettingsError(
                f"{setting.env_var}: required by the {name!r} profile but not set "
                f"({setting.doc}); set it in the environment or in {path.name}"
            )
        else:
            values[setting.key], sources[setting.key] = setting.default, "default"
            continue
        try:
            values[setting.key] = setting.parse(raw)
        except ValueError as exc:
            origin = "" if source == "env" else f" (from {where})"
            raise SettingsError(f"{setting.env_var}{origin}: {exc}, got {_show(raw)}") from None
        sources[setting.key] = source
    return Profile(name=name, path=path, values=values, sources=sources)


def export_to_environ(profile: Profile, environ: Mapping[str, str] | None = None) -> None:
    """Publish the profile file's database and broker URLs as ``TABLEBEAT_*`` variables where unset.

    Some code takes these two straight from the environment (``models.engine.database_url``, the
    CLI, child processes); exporting keeps it on the profile's database and broker. Other
    settings are read through ``app.conf`` and are not exported, so that a child process started
    with another ``APP_ENV`` gets that profile's values, not this one's.
    """
    env: Any = os.environ if environ is None else environ
    for key in EXPORTED_KEYS:
        if profile.sources.get(key) == "file":
            env.setdefault(SETTINGS_BY_KEY[key].env_var, str(profile.values[key]))


def _show(raw: Any) -> str:
    """``repr`` of a rejected value, shortened, with any URL password hidden."""
    text = re.sub(r"://[^/@\s]*@", "://***@", repr(raw))
    return text if len(text) <= 80 else text[:77] + "..."
