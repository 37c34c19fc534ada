"""Values at and beyond what each database takes, through the service layer on SQLite, MariaDB
and PostgreSQL: a clear error naming the parameter, never a driver error (issue 9 item 6)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conf.settings import Settings
from service.errors import TaskNotFound, ValidationFailed
from service.paging import MAX_OFFSET
from service.tasks import TaskService


@pytest.fixture
def service(migrated_url: str) -> Iterator[TaskService]:
    running = TaskService(Settings(database_url=migrated_url, broker_url="memory://"))
    running.create_task({"task_key": "x", "execute_func": "test_interval", "trigger": "interval", "spec": "5"})
    yield running
    running.close()


def test_largest_offset_is_an_empty_page(service: TaskService) -> None:
    assert service.list_tasks(offset=MAX_OFFSET).items == []
    assert service.list_runs("x", offset=MAX_OFFSET).items == []


@pytest.mark.parametrize("offset", [MAX_OFFSET + 1, 2**64, 10**20])
def test_offset_beyond_is_refused_naming_offset(service: TaskService, offset: int) -> None:
    with pytest.raises(ValidationFailed) as tasks:
        service.list_tasks(offset=offset)
    with pytest.raises(ValidationFailed) as runs:
        service.list_runs("x", offset=offset)
    assert tasks.value.field == runs.value.field == "offset"


@pytest.mark.parametrize("ref", ["2147483648", "9223372036854775808", "99999999999999999999", 10**20])
def test_task_id_beyond_the_column_is_not_found(service: TaskService, ref: str | int) -> None:
    with pytest.raises(TaskNotFound):
        service.get_task(ref)
    with pytest.raises(TaskNotFound):
        service.pause_task(ref)


def test_non_ascii_digits_are_a_task_key_not_an_id(service: TaskService) -> None:
    with pytest.raises(TaskNotFound):
        service.get_task("²")
    assert service.get_task(" x ").task_key == "x"
