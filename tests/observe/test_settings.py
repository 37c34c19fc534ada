"""Observability settings: defaults (all off) and the messages bad values get."""

from __future__ import annotations

import pytest

from conf.profiles import SettingsError, load_profile


def test_observability_is_off_by_default() -> None:
    profile = load_profile({})
    assert profile["metrics_port"] == 0 and profile["metrics_address"] == "127.0.0.1"
    assert profile["metrics_task_keys"] == () and profile["log_format"] == "text" and profile["otel"] is False


def test_values_from_the_environment() -> None:
    profile = load_profile(
        {
            "TABLEBEAT_METRICS_PORT": "9808",
            "TABLEBEAT_METRICS_ADDRESS": "0.0.0.0",
            "TABLEBEAT_METRICS_TASK_KEYS": "report, standup",
            "TABLEBEAT_LOG_FORMAT": "JSON",
            "TABLEBEAT_OTEL": "on",
        }
    )
    assert (profile["metrics_port"], profile["metrics_address"]) == (9808, "0.0.0.0")
    assert profile["metrics_task_keys"] == ("report", "standup")
    assert profile["log_format"] == "json" and profile["otel"] is True


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TABLEBEAT_METRICS_PORT", "abc", "TABLEBEAT_METRICS_PORT: must be a TCP port 1-65535, or 0 for off, got"),
        ("TABLEBEAT_METRICS_PORT", "70000", "TABLEBEAT_METRICS_PORT: must be a TCP port 1-65535"),
        ("TABLEBEAT_METRICS_ADDRESS", "http://x/", "TABLEBEAT_METRICS_ADDRESS: must be an address to listen on"),
        ("TABLEBEAT_LOG_FORMAT", "xml", "TABLEBEAT_LOG_FORMAT: must be 'text' or 'json', got 'xml'"),
        ("TABLEBEAT_OTEL", "maybe", "TABLEBEAT_OTEL: must be on or off"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_profile({variable: value})
    assert str(info.value).startswith(message)
