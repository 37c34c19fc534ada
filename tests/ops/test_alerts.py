"""Alerts: failed, lost and expired runs POST to a real local webhook, rate-limited per task."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert

from alerts.webhook import (
    Alerter,
    build_payload,
    decide_rate_limit,
    error_head,
    webhook_for,
)
from conf.settings import Settings
from models import ExecuteTask, RunStatus, make_engine
from tests.helpers import cluster_env, insert_task, sql
from tests.ops.conftest import WebhookReceiver
from tests.processes import Cluster, wait_for

TRACEBACK = "\n".join(
    ["Traceback (most recent call last):"]
    + [f'  File "/app/jobs.py", line {n}, in step{n}\n    step{n + 1}()' for n in range(40)]
    + ["RuntimeError: report failed on purpose"]
)


# --- pure parts ------------------------------------------------------------------------------------


def test_error_head_keeps_first_and_last_lines_bounded() -> None:
    head = error_head(TRACEBACK)
    lines = head.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: report failed on purpose"
    assert "lines omitted" in head and len(lines) == 10
    assert len(error_head("x" * 100_000)) == 300
    assert error_head(None) == "" and error_head("one line") == "one line"


@pytest.mark.parametrize(
    ("extra", "default", "expected"),
    [
        ("{}", "http://global/hook", "http://global/hook"),
        ('{"alert_webhook": "http://team/hook"}', "http://global/hook", "http://team/hook"),
        ('{"alert_webhook": "http://team/hook"}', "", "http://team/hook"),
        ('{"alert_webhook": ""}', "http://global/hook", ""),  # per task: alerts off
        ('{"alert_webhook": null}', "http://global/hook", ""),
        ("not json", "http://global/hook", "http://global/hook"),
        (None, "", ""),
        ("[1, 2]", "http://global/hook", "http://global/hook"),
    ],
)
def test_webhook_for_task_extra(extra: str | None, default: str, expected: str) -> None:
    assert webhook_for(extra, default) == expected


def test_payload_fields() -> None:
    class Run:
        id, task_id, task_key, execute_func = 42, 7, "nightly", "always_fails"
        trace_id, celery_id, worker, attempt = "t" * 32, "c-1", "w1@host", 1
        scheduled_at = started_at = finished_at = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
        error, result = TRACEBACK, None

    settings = Settings(
        alert_webhook="http://x/h", alert_min_interval_seconds=300, console_url="https://console.example"
    )
    alerted = datetime(2024, 5, 1, 9, 0, 2, tzinfo=UTC)
    payload = build_payload(Run(), "failed", settings, suppressed=3, alerted_at=alerted)
    assert payload["run_url"] == "https://console.example/runs/42"
    assert payload["task_key"] == "nightly" and payload["trace_id"] == "t" * 32 and payload["status"] == "failed"
    assert payload["suppressed"] == 3 and payload["rate_limit"] == {
        "min_interval_seconds": 300,
        "suppressed_since_last": 3,
        "alerted_at": "2024-05-01T09:00:02+00:00",
    }
    assert payload["text"] == (
        "tablebeat: nightly run 42 failed: RuntimeError: report failed on purpose "
        "(3 earlier alerts of this task suppressed)"
    )
    assert payload["scheduled_at"] == "2024-05-01T09:00:00+00:00"
    assert build_payload(Run(), "failed", Settings(), 0)["run_url"] is None


# --- rate limit in the database (every dialect) ------------------------------------------------------


def test_rate_limit_sends_one_per_interval_and_counts_the_rest(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        t0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
        decisions = [decide_rate_limit(engine, 5, t0 + timedelta(seconds=s), 60) for s in (0, 10, 20, 59)]
        assert [(d.send, d.suppressed) for d in decisions] == [(True, 0), (False, 1), (False, 2), (False, 3)]
        later = decide_rate_limit(engine, 5, t0 + timedelta(seconds=60), 60)
        assert (later.send, later.suppressed) == (True, 3)  # the next alert says how many were held back
        assert decide_rate_limit(engine, 6, t0 + timedelta(seconds=61), 60).send  # per task
        assert not decide_rate_limit(engine, 5, t0 + timedelta(seconds=61), 60).send
        assert decide_rate_limit(engine, 5, t0 + timedelta(seconds=61), 0).send  # 0 = no limit
    finally:
        engine.dispose()


# --- lost and expired runs, sent by an Alerter in this process (MariaDB) ---------------------------


def _add_run(db: Engine, task_id: int, status: RunStatus, error: str | None, result: str | None = None) -> int:
    now = datetime.now(UTC)
    with db.begin() as conn:
        return int(
            conn.execute(
                insert(ExecuteTask).values(
                    task_id=task_id,
                    status=status.value,
                    trace_id=f"trace{task_id}{status.value}",
                    scheduled_at=now,
                    finished_at=now,
                    worker="w1@host",
                    error=error,
                    result=result,
                )
            ).inserted_primary_key[0]
        )


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("status", "error", "result", "head"),
    [
        (
            RunStatus.LOST,
            "worker stopped sending heartbeats while the run was in progress",
            None,
            "worker stopped sending heartbeats while the run was in progress",
        ),
        (RunStatus.EXPIRED, None, "expired before start", "expired before start"),
        (RunStatus.FAILED, TRACEBACK, None, "RuntimeError: report failed on purpose"),
    ],
)
def test_lost_expired_and_failed_runs_are_posted(
    db: Engine,
    mariadb_url: str,
    webhook: WebhookReceiver,
    status: RunStatus,
    error: str | None,
    result: str | None,
    head: str,
) -> None:
    task_id = insert_task(db, f"alert_{status.value}", "noop", "interval", "3600")
    run_id = _add_run(db, task_id, status, error, result)
    alerter = Alerter(
        Settings(
            alert_webhook=webhook.url + "/hook",
            alert_min_interval_seconds=300,
            console_url="http://console:8000",
            database_url=mariadb_url,
        )
    )
    alerter.submit(run_id, status)
    assert alerter.flush(10)
    (post,) = webhook.posts("/hook")
    assert post.body["status"] == status.value and post.body["event"] == f"run_{status.value}"
    assert post.body["run_id"] == run_id and post.body["task_key"] == f"alert_{status.value}"
    assert post.body["trace_id"] == f"trace{task_id}{status.value}"
    assert post.body["run_url"] == f"http://console:8000/runs/{run_id}"
    assert post.body["error_head"].splitlines()[-1] == head


@pytest.mark.mariadb
def test_other_statuses_do_not_alert(db: Engine, mariadb_url: str, webhook: WebhookReceiver) -> None:
    task_id = insert_task(db, "alert_quiet", "noop", "interval", "3600")
    alerter = Alerter(Settings(alert_webhook=webhook.url, database_url=mariadb_url))
    for status in (RunStatus.SUCCESS, RunStatus.SKIPPED, RunStatus.RETRYING):
        alerter.submit(_add_run(db, task_id, status, None), status)
    assert alerter.flush(5)
    assert webhook.posts() == []


@pytest.mark.mariadb
def test_unreachable_or_failing_webhook_costs_one_log_line(
    db: Engine, mariadb_url: str, webhook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/secret-token"
    task_id = insert_task(db, "alert_dead", "noop", "interval", "3600")
    alerter = Alerter(Settings(alert_webhook=dead, alert_min_interval_seconds=0, database_url=mariadb_url))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="tablebeat.alerts"):
        alerter.submit(_add_run(db, task_id, RunStatus.FAILED, "boom"), RunStatus.FAILED)
        assert time.monotonic() - started < 0.5  # queued, not sent inline
        assert alerter.flush(10)
        webhook.status = 500
        failing = Alerter(Settings(alert_webhook=webhook.url, alert_min_interval_seconds=0, database_url=mariadb_url))
        failing.submit(_add_run(db, task_id, RunStatus.FAILED, "boom"), RunStatus.FAILED)
        assert failing.flush(10)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "not sent to http://127.0.0.1:" in lines[0] and "ConnectError" in lines[0]
    assert "secret-token" not in lines[0]
    assert "HTTP 500" in lines[1]


@pytest.mark.mariadb
def test_slow_webhook_times_out_after_two_seconds(db: Engine, mariadb_url: str) -> None:
    with socket.socket() as server:  # accepts the connection, never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        task_id = insert_task(db, "alert_slow", "noop", "interval", "3600")
        alerter = Alerter(
            Settings(
                alert_webhook=f"http://127.0.0.1:{server.getsockname()[1]}/",
                alert_min_interval_seconds=0,
                database_url=mariadb_url,
            )
        )
        started = time.monotonic()
        alerter.submit(_add_run(db, task_id, RunStatus.FAILED, "boom"), RunStatus.FAILED)
        assert alerter.flush(10)
        assert 1.9 <= time.monotonic() - started < 5


# --- end to end: real beat and worker processes ------------------------------------------------------


@pytest.mark.integration
@pytest.mark.mariadb
def test_failing_job_alerts_through_real_worker_with_rate_limit(
    db: Engine, mariadb_url: str, broker_url: str, webhook: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> None:
    min_interval = 4
    cluster = Cluster(
        cluster_env(
            mariadb_url,
            broker_url,
            TABLEBEAT_ALERT_WEBHOOK=webhook.url + "/global",
            TABLEBEAT_ALERT_MIN_INTERVAL_SECONDS=str(min_interval),
            TABLEBEAT_CONSOLE_URL="http://console.example:8000/",
        ),
        tmp_path_factory.mktemp("alerts"),
    )
    try:
        cluster.start_worker(concurrency=2)
        cluster.start_worker(concurrency=2)  # two worker hosts share the rate limit through the database
        cluster.start_beat()
        cluster.wait_ready()
        task_id = insert_task(db, "e2e_fails", "always_fails", "interval", "1")
        team_id = insert_task(
            db,
            "e2e_team",
            "always_fails",
            "interval",
            "1",
            extra=f'{{"alert_webhook": "{webhook.url}/team", "owner": "ops"}}',
        )
        try:
            first = wait_for(lambda: webhook.posts("/global"), 60, what="first alert")[0]
            wait_for(lambda: len(webhook.posts("/global")) >= 2, min_interval + 30, what="second alert")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; received {webhook.posts()!r}\n{cluster.logs()}") from None
        failed_runs = sql(db, "SELECT COUNT(*) FROM execute_task WHERE task_id = :t AND status = 'failed'", t=task_id)[
            0
        ][0]
    finally:
        cluster.stop_all()
    body = first.body
    run_id, trace_id, status, error = sql(
        db, "SELECT id, trace_id, status, error FROM execute_task WHERE id = :r", r=body["run_id"]
    )[0]
    assert (body["task_key"], body["status"], body["trace_id"]) == ("e2e_fails", "failed", trace_id)
    assert status == "failed" and body["task_id"] == task_id and body["job"] == "always_fails"
    assert body["run_url"] == f"http://console.example:8000/runs/{run_id}"
    assert body["error_head"].splitlines()[0] == "Traceback (most recent call last):"
    assert body["error_head"].splitlines()[-1] == error.strip().splitlines()[-1]
    assert "e2e_fails failed on purpose" in body["error_head"] and body["suppressed"] == 0
    # Rate limit: one alert per task per interval, the next one says how many were held back.
    posts = webhook.posts("/global")
    assert all(p.body["task_key"] == "e2e_fails" for p in posts)  # e2e_team goes to its own hook
    # Judged by when the limit let each through, not by arrival: a loaded machine delays deliveries unevenly.
    sent = [datetime.fromisoformat(p.body["rate_limit"]["alerted_at"]) for p in posts[:2]]
    assert (sent[1] - sent[0]).total_seconds() >= min_interval
    assert posts[1].body["suppressed"] >= 1 and "suppressed" in posts[1].body["text"]
    assert failed_runs > len(posts)
    team = webhook.posts("/team")
    assert team and all(p.body["task_key"] == "e2e_team" and p.body["task_id"] == team_id for p in team)
