"""Settings profiles: ``APP_ENV`` picks ``conf/<env>.toml``; ``TABLEBEAT_*`` variables override it.

:func:`load_settings` builds the one :class:`conf.settings.Settings` of a process. A value is
taken from the environment if set and non-empty, else from the profile file, else from the
built-in default (``conf.settings``, the only place defaults are written; profile files hold only
what differs). A bad or missing one raises :class:`SettingsError` whose message starts with the
variable's name, so start-up stops with a line an operator can act on::

    TABLEBEAT_REFRESH_SECONDS: must be a positive number, got 'abc'

Standard library only (plus ``conf.settings``): ``celeryconfig`` imports it before Celery is configured.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conf.legacy_layout import PROFILE_ALIASES, profile_files, translate
from conf.settings import SETTINGS, SETTINGS_BY_KEY, Settings, SettingsError, show

__all__ = [
    "CONF_DIR",
    "PROFILES",
    "SETTINGS",
    "Profile",
    "SettingsError",
    "export_to_environ",
    "load_profile",
    "load_settings",
]

PROFILES = ("local", "test", "online")
DEFAULT_PROFILE = "local"
#: The profile files; ``TABLEBEAT_CONF_DIR`` points elsewhere (e.g. a mounted volume).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
#: Keys of a profile file that are not settings.
_META_KEYS = frozenset({"required"})
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

    def settings(self) -> Settings:
        """The checked settings object of these values."""
        return Settings(**self.values)


def profile_name(environ: Mapping[str, str]) -> str:
    """The profile ``APP_ENV`` selects (default ``local``; 002's ``product`` is ``online``)."""
    name = (environ.get("APP_ENV") or DEFAULT_PROFILE).strip().lower()
    name = PROFILE_ALIASES.get(name, name)
    if name not in PROFILES:
        raise SettingsError(f"APP_ENV: unknown profile {name!r}; use one of {', '.join(PROFILES)}")
    return name


def read_profile(folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """The settings of profile ``name``: ``<name>.toml``, or every file of the folder ``<name>/``.

    Earlier systems' layouts load too (``conf.legacy_layout``): 001's folders, 002's ``product``,
    and their ``[mysql]``/``[redis]``/``[logger]`` tables.
    """
    path, files = profile_files(folder, name)
    if not files:
        raise SettingsError(f"APP_ENV: profile file {path} does not exist (nor a folder {folder / name})")
    data: dict[str, Any] = {}
    seen: dict[str, Path] = {}
    for file in files:
        for key, value in read_profile_file(file).items():
            if key in seen and key != "required":
                raise SettingsError(f"{file}: {key!r} is already set by {seen[key].name}")
            seen[key] = file
            data[key] = [*data.get(key, []), *value] if key == "required" else value
    return path, data


def read_profile_file(path: Path) -> dict[str, Any]:
    """The raw contents of a profile file; raises for a missing file, bad TOML or unknown keys."""
    try:
        with path.open("rb") as fh:
            data = translate(tomllib.load(fh), path.stem)
    except FileNotFoundError:
        raise SettingsError(f"APP_ENV: profile file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    except ValueError as exc:
        raise SettingsError(f"{path}: {exc}") from None
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
    path, data = read_profile(folder, name)
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
            raise SettingsError(f"{setting.env_var}{origin}: {exc}, got {show(raw)}") from None
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


def load_settings(environ: Mapping[str, str] | None = None, conf_dir: Path | None = None) -> Settings:
    """The settings of this process: the ``APP_ENV`` profile, then the environment (see :func:`load_profile`).

    :raises SettingsError: as :func:`load_profile`, or when two settings disagree.
    """
    return load_profile(environ, conf_dir).settings()
