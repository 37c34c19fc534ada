"""The CLI refuses, exit 2 with one line naming the option: reserved kwargs, a date already past
beyond its grace, prune durations out of range (issue 9 items 2, 4 and 6).  MariaDB + Redis."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Invoke

pytestmark = pytest.mark.mariadb


@pytest.mark.parametrize("name", ["self", "task_key", "sub_task_id", "__unique_trace_id__"])
def test_reserved_kwargs_exit_2_naming_kwargs(tablebeat: Invoke, name: str) -> None:
    result = tablebeat(
        "task", "add", "r", "-f", "test_interval", "-t", "interval", "-s", "5", "--kwargs", f'{{"{name}": 1}}'
    )
    assert result.exit_code == 2, result.output
    assert f"kwargs: key {name!r} is reserved" in result.stderr
    assert "no tasks" in tablebeat("task", "list").stdout.lower() or "r " not in tablebeat("task", "list").stdout


def test_date_already_past_exits_2_naming_spec(tablebeat: Invoke) -> None:
    result = tablebeat("task", "add", "old", "-f", "test_date", "-t", "date", "-s", "2020-01-01 00:00:00")
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "spec: " in result.stderr and "misfire_grace_seconds" in result.stderr


@pytest.mark.parametrize("value", ["99999999999999999999w", "99999999999999999999d", "300000000w", "10000000000000s"])
def test_prune_duration_out_of_range_is_one_line_naming_older_than(tablebeat: Invoke, value: str) -> None:
    result = tablebeat("prune", "--older-than", value)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--older-than" in lines[0] and "Traceback" not in result.output, result.output


def test_prune_largest_duration_still_works(tablebeat: Invoke) -> None:
    result = tablebeat("prune", "--older-than", "5000w")
    assert result.exit_code == 0 and "deleted 0" in result.stdout, result.output


@pytest.mark.parametrize("argv", [["task", "list"], ["task", "logs", "r"]])
def test_huge_offset_exits_2_naming_offset(tablebeat: Invoke, argv: list[str]) -> None:
    assert tablebeat("task", "add", "r", "-f", "test_interval", "-t", "interval", "-s", "5").exit_code == 0
    result = tablebeat(*argv, "--offset", "99999999999999999999")
    assert result.exit_code == 2, result.output
    assert "offset: must be at most" in result.stderr and "Traceback" not in result.output
