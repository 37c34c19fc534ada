"""APP_ENV settings profiles: conf/<env>.toml, environment overrides, validation messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conf.profiles import (
    CONF_DIR,
    PROFILES,
    SETTINGS,
    SettingsError,
    export_to_environ,
    load_profile,
    load_settings,
    read_profile_file,
)
from conf.settings import Settings, default
from tests.ops.conftest import REPO

ONLINE_URLS = {
    "TABLEBEAT_DATABASE_URL": "mysql+pymysql://tb:pw@db:3306/tablebeat",
    "TABLEBEAT_BROKER_URL": "redis://redis:6379/0",
}


def write_profile(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(body)
    return path


def test_default_profile_is_local_with_embedded_defaults() -> None:
    profile = load_profile({})
    assert profile.name == "local" and profile.path == CONF_DIR / "local.toml"
    assert profile["database_url"] == "" and profile["broker_url"] == ""  # SQLite files, resolved by Settings
    assert profile["refresh_seconds"] == 10.0 and profile["timezone"] == "UTC"
    assert profile["job_modules"] == ("workers.examples",)
    assert profile.sources["refresh_seconds"] == "default"
    settings = profile.settings()
    assert settings.database_url == f"sqlite:///{Path.cwd() / 'tablebeat.db'}"
    assert settings.broker_url == f"sqla+sqlite:///{Path.cwd() / 'tablebeat-broker.db'}"


def test_test_profile_points_at_local_services() -> None:
    profile = load_profile({"APP_ENV": "test"})
    assert profile["database_url"].startswith("mysql+pymysql://root@127.0.0.1:3306/")
    assert profile["broker_url"] == "redis://127.0.0.1:6379/1"
    assert profile["refresh_seconds"] == 3.0
    assert profile.sources["database_url"] == "file"


@pytest.mark.parametrize("name", PROFILES)
def test_every_shipped_profile_loads(name: str) -> None:
    profile = load_profile({"APP_ENV": name, **ONLINE_URLS})
    assert set(profile.values) == {s.key for s in SETTINGS}


@pytest.mark.parametrize("name", PROFILES)
def test_profile_files_hold_only_what_differs_from_the_defaults(name: str) -> None:
    data = read_profile_file(CONF_DIR / f"{name}.toml")
    repeated = sorted(key for key, value in data.items() if key != "required" and value == default(key))
    assert not repeated, f"{name}.toml repeats built-in defaults (conf/settings.py): {repeated}"


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("TABLEBEAT_STALE_CLAIM_SECONDS", "4", "stale_claim_seconds", 4.0),
        ("TABLEBEAT_WORKER_DEAD_SECONDS", "12", "worker_dead_seconds", 12.0),
        ("TABLEBEAT_HEARTBEAT_SECONDS", "1.5", "heartbeat_seconds", 1.5),
        ("TABLEBEAT_LOOKAHEAD_SECONDS", "0.5", "lookahead_seconds", 0.5),
        ("TABLEBEAT_PUBLISH_BATCH_SIZE", "200", "publish_batch_size", 200),
        ("TABLEBEAT_TIMEZONE", "Asia/Shanghai", "timezone", "Asia/Shanghai"),
        ("TABLEBEAT_MISFIRE_GRACE_SECONDS", "5", "misfire_grace_seconds", 5),
    ],
)
def test_every_setting_comes_from_its_environment_variable(
    variable: str, value: str, field: str, expected: object
) -> None:
    assert getattr(load_settings({variable: value}), field) == expected


def test_settings_built_in_code_are_checked_too() -> None:
    assert Settings() == load_settings({}, conf_dir=CONF_DIR)
    with pytest.raises(SettingsError, match=r"^TABLEBEAT_POLL_SECONDS: must be a positive number, got 0"):
        Settings(poll_seconds=0)
    with pytest.raises(SettingsError, match=r"^TABLEBEAT_WORKER_DEAD_SECONDS must be at least twice"):
        load_settings({"TABLEBEAT_WORKER_DEAD_SECONDS": "6", "TABLEBEAT_HEARTBEAT_SECONDS": "5"})
    assert "secret" not in repr(Settings(database_url="mysql+pymysql://u:secret@db/x"))


def test_app_env_is_case_insensitive() -> None:
    assert load_profile({"APP_ENV": " Test "}).name == "test"


def test_environment_overrides_the_profile_file() -> None:
    profile = load_profile(
        {"APP_ENV": "test", "TABLEBEAT_REFRESH_SECONDS": "7", "TABLEBEAT_JOB_MODULES": "a.jobs, b.jobs"}
    )
    assert profile["refresh_seconds"] == 7.0 and profile.sources["refresh_seconds"] == "env"
    assert profile["job_modules"] == ("a.jobs", "b.jobs")


def test_empty_environment_variable_counts_as_unset() -> None:
    profile = load_profile({"APP_ENV": "test", "TABLEBEAT_REFRESH_SECONDS": "  "})
    assert profile["refresh_seconds"] == 3.0 and profile.sources["refresh_seconds"] == "file"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TABLEBEAT_REFRESH_SECONDS", "abc", "TABLEBEAT_REFRESH_SECONDS: must be a positive number, got 'abc'"),
        ("TABLEBEAT_REFRESH_SECONDS", "0", "TABLEBEAT_REFRESH_SECONDS: must be a positive number, got '0'"),
        ("TABLEBEAT_POLL_SECONDS", "nan", "TABLEBEAT_POLL_SECONDS: must be a positive number, got 'nan'"),
        ("TABLEBEAT_MISFIRE_GRACE_SECONDS", "-1", "TABLEBEAT_MISFIRE_GRACE_SECONDS: must be a whole number >= 0"),
        ("TABLEBEAT_MISFIRE_GRACE_SECONDS", "1.5", "TABLEBEAT_MISFIRE_GRACE_SECONDS: must be a whole number >= 0"),
        ("TABLEBEAT_VISIBILITY_TIMEOUT_SECONDS", "0", "TABLEBEAT_VISIBILITY_TIMEOUT_SECONDS: must be a positive whole"),
        ("TABLEBEAT_TIMEZONE", "Mars/Olympus", "TABLEBEAT_TIMEZONE: must be an IANA time zone"),
        ("TABLEBEAT_DATABASE_URL", "nonsense", "TABLEBEAT_DATABASE_URL: cannot parse"),
        ("TABLEBEAT_DATABASE_URL", "oracle://x/y", "TABLEBEAT_DATABASE_URL: unsupported backend 'oracle'"),
        ("TABLEBEAT_BROKER_URL", "localhost:6379", "TABLEBEAT_BROKER_URL: must be a broker URL"),
        ("TABLEBEAT_ALERT_WEBHOOK", "ftp://hooks", "TABLEBEAT_ALERT_WEBHOOK: must be an http:// or https:// URL"),
        ("TABLEBEAT_ALERT_MIN_INTERVAL_SECONDS", "-5", "TABLEBEAT_ALERT_MIN_INTERVAL_SECONDS: must be a number >= 0"),
        ("TABLEBEAT_CONSOLE_URL", "console", "TABLEBEAT_CONSOLE_URL: must be an http:// or https:// URL"),
        ("TABLEBEAT_JOB_MODULES", "my-jobs", "TABLEBEAT_JOB_MODULES: must be comma-separated module names"),
        ("APP_ENV", "prod", "APP_ENV: unknown profile 'prod'; use one of local, test, online"),
    ],
)
def test_invalid_setting_is_named_with_the_reason(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_profile({variable: value})
    assert str(caught.value).startswith(message)


def test_online_profile_requires_the_connection_urls() -> None:
    with pytest.raises(SettingsError, match=r"^TABLEBEAT_DATABASE_URL: required by the 'online' profile"):
        load_profile({"APP_ENV": "online", "TABLEBEAT_BROKER_URL": "redis://r:6379/0"})
    with pytest.raises(SettingsError, match=r"^TABLEBEAT_BROKER_URL: required by the 'online' profile"):
        load_profile({"APP_ENV": "online", "TABLEBEAT_DATABASE_URL": ONLINE_URLS["TABLEBEAT_DATABASE_URL"]})
    assert load_profile({"APP_ENV": "online", **ONLINE_URLS})["broker_url"] == "redis://redis:6379/0"


def test_bad_value_in_a_file_names_the_variable_and_the_file(tmp_path: Path) -> None:
    write_profile(tmp_path, "local", 'refresh_seconds = "often"\n')
    with pytest.raises(SettingsError) as caught:
        load_profile({}, conf_dir=tmp_path)
    assert str(caught.value) == ("TABLEBEAT_REFRESH_SECONDS (from local.toml): must be a positive number, got 'often'")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("refresh_secs = 5\n", r"unknown setting 'refresh_secs'"),
        ("refresh_seconds = \n", r"not valid TOML"),
        ('required = ["nope"]\n', r"'required' must be a list of setting names"),
        ("refresh_seconds = true\n", r"TABLEBEAT_REFRESH_SECONDS \(from local.toml\): must be a positive number"),
    ],
)
def test_broken_profile_files(tmp_path: Path, body: str, message: str) -> None:
    write_profile(tmp_path, "local", body)
    with pytest.raises(SettingsError, match=message):
        load_profile({}, conf_dir=tmp_path)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^APP_ENV: profile file .*test.toml does not exist"):
        load_profile({"APP_ENV": "test"}, conf_dir=tmp_path)


def test_conf_dir_from_environment(tmp_path: Path) -> None:
    write_profile(tmp_path, "local", "refresh_seconds = 2.5\n")
    assert load_profile({"TABLEBEAT_CONF_DIR": str(tmp_path)})["refresh_seconds"] == 2.5


def test_password_in_a_rejected_url_is_not_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        load_profile({"TABLEBEAT_BROKER_URL": "rdis://user:s3cret@host:6379/0"})
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


def test_export_publishes_profile_urls_without_overriding_the_environment() -> None:
    environ = {"APP_ENV": "test", "TABLEBEAT_BROKER_URL": "redis://elsewhere:6379/2"}
    export_to_environ(load_profile(environ), environ)
    assert environ["TABLEBEAT_DATABASE_URL"].startswith("mysql+pymysql://root@127.0.0.1")
    assert environ["TABLEBEAT_BROKER_URL"] == "redis://elsewhere:6379/2"
    assert "TABLEBEAT_REFRESH_SECONDS" not in environ  # read through app.conf, not exported
    local: dict[str, str] = {}
    export_to_environ(load_profile(local), local)
    assert local == {}  # the embedded SQLite defaults stay computed by their readers


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``args`` with only ``env``'s tablebeat settings (none inherited from this process)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_") and k != "APP_ENV"}
    return subprocess.run(
        args, env={**clean, "PYTHONPATH": str(REPO), **env}, cwd=str(REPO), capture_output=True, text=True, timeout=60
    )


def test_celery_app_takes_its_settings_from_the_profile() -> None:
    code = (
        "from workers import app; c = app.conf; "
        "s = c.tablebeat_settings; print(c.app_env, s.refresh_seconds, c.broker_url, c.timezone, s.database_url)"
    )
    done = _run([sys.executable, "-c", code], {"APP_ENV": "test", "TABLEBEAT_TIMEZONE": "Asia/Shanghai"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "test",
        "3.0",
        "redis://127.0.0.1:6379/1",
        "Asia/Shanghai",
        "mysql+pymysql://root@127.0.0.1:3306/tablebeat_test?charset=utf8mb4",
    ]


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"TABLEBEAT_REFRESH_SECONDS": "abc"}, "TABLEBEAT_REFRESH_SECONDS: must be a positive number, got 'abc'"),
        ({"APP_ENV": "staging"}, "APP_ENV: unknown profile 'staging'"),
        ({"APP_ENV": "online"}, "TABLEBEAT_DATABASE_URL: required by the 'online' profile"),
    ],
)
def test_celery_start_up_stops_with_one_line_naming_the_setting(env: dict[str, str], line: str) -> None:
    done = _run([sys.executable, "-m", "celery", "-A", "workers", "worker", "--help"], env)
    assert done.returncode != 0
    assert done.stderr.strip().startswith(f"tablebeat: invalid configuration: {line}")
    assert "Traceback" not in done.stderr
