"""A change wins over a claim (issue 9 item 3): a pause, delete or edit committed at least one
poll interval (0.5 s) before a fire's instant is honoured for that fire, through SQL, CLI and API.

A task fires every second (cron, so edits keep its instants); 20 changes are made to it,
about 0.7 s apart (args edits, pauses, resumes, then a delete).  Afterwards every run that
executed must have run with a config that may have been in effect during the 0.5 s before its
instant: none ran after a pause or delete took effect, none with stale args.  Before the fix,
fires beat had already claimed (up to 2 s ahead) were published and ran with the old args,
after a pause, and after the delete.
"""

from __future__ import annotations

import ast
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from tests.helpers import insert_task, sql
from tests.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]

CHANGES = 20
POLL_S = 0.5
KEY = "chg"


@dataclass(frozen=True)
class Change:
    began: float  # epoch seconds before the change was sent
    ended: float  # after it returned (committed)
    args: str | None  # the args in effect from then on; None: paused or deleted


def _plan() -> list[tuple[str, str]]:
    """(action, value): edits, a pause and a resume every five, a delete at the end."""
    plan: list[tuple[str, str]] = []
    for i in range(CHANGES - 1):
        plan.append(("pause", "") if i % 5 == 2 else ("resume", "") if i % 5 == 3 else ("edit", f"v{i}"))
    plan.append(("delete", ""))
    return plan


Apply = Callable[[str, str], None]


def _sql_channel(db: Engine) -> Apply:
    def apply(action: str, value: str) -> None:
        if action == "edit":
            sql(db, "UPDATE task SET args = :a WHERE task_key = :k", a=f'"{value}"', k=KEY)
        elif action == "pause":
            sql(db, "UPDATE task SET is_valid = 0 WHERE task_key = :k", k=KEY)
        elif action == "resume":
            sql(db, "UPDATE task SET is_valid = 1 WHERE task_key = :k", k=KEY)
        else:
            sql(db, "DELETE FROM task WHERE task_key = :k", k=KEY)

    return apply


def _cli_channel(db_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Apply:
    from cli.main import app

    monkeypatch.setenv("TABLEBEAT_DATABASE_URL", db_url)
    monkeypatch.setenv("TABLEBEAT_BROKER_URL", broker_url)
    monkeypatch.delenv("TABLEBEAT_API_TOKEN", raising=False)
    runner = CliRunner()

    def apply(action: str, value: str) -> None:
        argv = {
            "edit": ["task", "edit", KEY, "--args", f'"{value}"'],
            "pause": ["task", "pause", KEY],
            "resume": ["task", "resume", KEY],
            "delete": ["task", "rm", KEY, "--yes"],
        }[action]
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output

    return apply


def _api_channel(client: TestClient) -> Apply:
    def apply(action: str, value: str) -> None:
        if action == "edit":
            response = client.patch(f"/tasks/{KEY}", json={"args": f'"{value}"'})
        elif action == "delete":
            response = client.delete(f"/tasks/{KEY}")
        else:
            response = client.post(f"/tasks/{KEY}/{action}", json={})
        assert response.status_code in (200, 204), response.text

    return apply


@pytest.fixture
def api_client(maria_url: str, broker_url: str) -> Iterator[TestClient]:
    from api.app import create_app
    from api.settings import ApiSettings
    from conf.settings import Settings
    from service.tasks import TaskService

    settings = ApiSettings(Settings(database_url=maria_url, broker_url=broker_url), api_token="t0ken")
    service = TaskService(settings.service)
    try:
        with TestClient(create_app(settings, service=service)) as client:
            client.headers.update({"Authorization": "Bearer t0ken", "Content-Type": "application/json"})
            yield client
    finally:
        service.close()


def _allowed(changes: list[Change], scheduled: float) -> set[str | None]:
    """Configs that may have been in effect at some time within the poll interval before ``scheduled``."""
    window = (scheduled - POLL_S, scheduled)
    allowed: set[str | None] = set()
    for i, change in enumerate(changes):
        # In effect at the earliest when it began, at the latest until the next change returned.
        until = changes[i + 1].ended if i + 1 < len(changes) else float("inf")
        if change.began <= window[1] and until >= window[0]:
            allowed.add(change.args)
    return allowed


@pytest.mark.parametrize("channel", ["sql", "cli", "api"])
def test_change_wins_over_claim(
    channel: str, maria_url: str, broker_url: str, make_cluster, engine_for, request, monkeypatch
) -> None:
    db = engine_for(maria_url)
    cluster = make_cluster(maria_url)
    cluster.start_worker(concurrency=4)
    cluster.start_beat()
    cluster.wait_ready()
    if channel == "sql":
        apply = _sql_channel(db)
    elif channel == "cli":
        apply = _cli_channel(maria_url, broker_url, monkeypatch)
    else:
        apply = _api_channel(request.getfixturevalue("api_client"))

    began = time.time()
    task_id = insert_task(db, KEY, "test_interval", "cron", "* * * * * *", '"start"')
    changes = [Change(began, time.time(), "start")]
    wait_for(lambda: sql(db, "SELECT COUNT(*) FROM execute_task WHERE status = 'success'")[0][0] >= 2, 30, what="runs")
    rng = random.Random(7)
    current: str | None = "start"
    for action, value in _plan():
        time.sleep(0.55 + rng.random() * 0.3)  # pacing between changes (not a readiness wait)
        began = time.time()
        apply(action, value)
        if action == "edit":
            current = value
        elif action == "resume":
            pass  # the args before the pause come back
        args = None if action in ("pause", "delete") else current
        changes.append(Change(began, time.time(), args))
    # Everything claimed has been decided: no run of the task is pending or running any more.
    wait_for(
        lambda: (
            not sql(
                db,
                "SELECT COUNT(*) FROM execute_task WHERE task_id = :t AND status IN ('pending', 'running')",
                t=task_id,
            )[0][0]
        ),
        30,
        what="every run of the task to be final",
    )
    rows = sql(db, "SELECT id, status, scheduled_at, result FROM execute_task WHERE task_id = :t", t=task_id)
    executed = [r for r in rows if r[1] in ("success", "failed")]
    # Runs happened while the changes were made (how many depends on the machine's load, so no fixed count).
    first_change = changes[1].began
    assert any(r[2].replace(tzinfo=UTC).timestamp() > first_change for r in executed), rows
    bad = []
    for run_id, _status, scheduled_at, result in executed:
        at = scheduled_at.replace(tzinfo=UTC).timestamp()
        ran_with = ast.literal_eval(ast.literal_eval(result).removeprefix("interval ok "))[0]
        if ran_with not in _allowed(changes, at):
            bad.append((run_id, datetime.fromtimestamp(at, UTC).isoformat(), ran_with, _allowed(changes, at)))
    assert not bad, (bad, changes)
    cancelled = [
        r for r in rows if r[1] == "skipped" and r[3] and r[3].split(":")[0] in ("paused", "deleted", "rescheduled")
    ]
    assert cancelled, rows  # claims cancelled with their reason
