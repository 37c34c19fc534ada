"""The end-to-end contract of tablebeat, the same on every database and broker.

Each test runs on the backend cells its ``cells`` mark names, against one beat and two workers
per cell (real ``celery`` processes, see ``conftest.py``). Fire and record run on all nine
database x broker cells; the other behaviours on each database with Redis and each broker with
MariaDB; the beat restart and the worker kill, decided by the database alone, on each database.

To keep a cell quick its operator actions happen together (:func:`actions`: pause, delete and
edit committed at once, run now and the overlapping job started, a worker killed); each test then
waits for and checks its own part. Tests of one cell run in this file's order; the run invariant,
checked last, covers every run the others made.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from models import FINAL_STATUSES
from tests.contract.backends import ALL_CELLS, CORE_CELLS, DATABASE_CELLS
from tests.contract.harness import LOST_BOUND_S, LOST_QUEUE, PATIENCE_S, ContractCell, after, utcnow
from tests.processes import wait_for

pytestmark = [pytest.mark.integration]

#: A change committed at T is honoured for every fire after T + PICKUP_S: beat claims fires up to
#: 2 s ahead (lookahead) and probes the change log every 0.5 s, so no fire after that gets a row.
PICKUP_S = 2.5
#: Fires claimed before a change and due after T + CHANGE_WINS_S get a row but do not execute: the
#: worker's guarded start skips them with the reason (issue 9 item 3).
CHANGE_WINS_S = 0.5

FINAL = {s.value for s in FINAL_STATUSES}
_STARTED = re.compile(r"run (\d+) started \(attempt (\d+)\)")


def runs_after(contract: ContractCell, task_id: int, instant: datetime) -> list[dict]:
    return [r for r in contract.runs(task_id) if r["scheduled_at"] > instant]


def finish(command: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = command.communicate(timeout=PATIENCE_S)
    return subprocess.CompletedProcess(command.args, command.returncode, stdout, stderr)


def successes(contract: ContractCell, task_id: int) -> list[dict]:
    return contract.runs(task_id, "success")


@pytest.mark.cells(ALL_CELLS)
def test_fire_and_record_with_trace_id(contract: ContractCell) -> None:
    added = utcnow()
    task_id = contract.add("c_fire", "test_interval", "interval", "1", "1,2,3")
    run = wait_for(lambda: successes(contract, task_id), PATIENCE_S, what="a recorded run")[0]
    task = contract.task(task_id)  # before the pause, which clears next_run_at
    contract.set(task_id, is_valid=0)
    assert re.fullmatch(r"[0-9a-f]{32}", run["trace_id"]), run
    assert run["worker"] and run["celery_id"] and run["attempt"] == 1
    assert added - timedelta(seconds=1) <= run["scheduled_at"] <= run["started_at"] <= run["finished_at"], run
    assert run["result"] == "'interval ok [1, 2, 3]'"
    assert task and task["last_run_at"] is not None and task["next_run_at"] > task["last_run_at"]
    # Every log line of the run carries its trace ID and task key.
    wait_for(lambda: f"trace_id={run['trace_id']}" in contract.logs(), 10, what="the run's log lines")
    run_lines = [line for line in contract.logs().splitlines() if f"run {run['id']} " in line]
    assert run_lines and all(f"trace_id={run['trace_id']}" in line and "c_fire" in line for line in run_lines)


@dataclass
class Actions:
    """What was done to a cell, and when each change committed."""

    pause_id: int
    delete_id: int
    edit_id: int
    overlap_id: int
    now_id: int
    run_now: subprocess.CompletedProcess[str]
    run_now_at: datetime
    paused_at: datetime
    deleted_at: datetime
    edited_at: datetime
    lost_id: int | None = None
    killed_at: datetime | None = None


@pytest.fixture(scope="module")
def actions(contract: ContractCell) -> Iterator[Actions]:
    c = contract
    pause_id = c.add("c_pause", "test_interval", "interval", "1")
    delete_id = c.add("c_delete", "test_interval", "interval", "1")
    edit_id = c.add("c_edit", "test_interval", "interval", "1", "1")
    # Each worker alone has two slots: only the database can hold the limit of one.
    overlap_id = c.add("c_overlap", "sleep_for", "interval", "1", "2", max_instances=1)
    # Paused and hourly: the only run is the one asked for.
    now_id = c.add("c_now", "test_interval", "interval", "3600", "5", is_valid=0)
    lost_id = None
    asked = []
    if c.live_on(LOST_QUEUE):
        lost_id = c.add("c_lost", "sleep_for", "interval", "3600", "120", is_valid=0, queue=LOST_QUEUE)
        asked.append(c.cli_start("task", "run", "c_lost"))
    run_now_at = utcnow()
    asked.append(c.cli_start("task", "run", "c_now"))
    for task_id in (pause_id, delete_id, edit_id):
        wait_for(lambda t=task_id: successes(c, t), PATIENCE_S, what=f"a first run of task {task_id}")
    *_, run_now = [finish(command) for command in asked]
    paused_at = c.set(pause_id, is_valid=0)
    deleted_at = c.delete(delete_id)
    edited_at = c.set(edit_id, args="7,8", spec="2")
    killed_at = None
    if lost_id is not None:
        wait_for(lambda: c.runs(lost_id, "running"), PATIENCE_S, what="the run to be killed to start")
        (victim,) = c.live_on(LOST_QUEUE)
        victim.signal(signal.SIGKILL)  # main process and pool child
        killed_at = utcnow()
    yield Actions(
        pause_id=pause_id,
        delete_id=delete_id,
        edit_id=edit_id,
        overlap_id=overlap_id,
        now_id=now_id,
        run_now=run_now,
        run_now_at=run_now_at,
        paused_at=paused_at,
        deleted_at=deleted_at,
        edited_at=edited_at,
        lost_id=lost_id,
        killed_at=killed_at,
    )


@pytest.mark.cells(CORE_CELLS)
def test_run_now(contract: ContractCell, actions: Actions) -> None:
    assert actions.run_now.returncode == 0, actions.run_now.stderr
    trace_id = re.search(r"trace_id=([0-9a-f]{32})", actions.run_now.stdout).group(1)
    (run,) = wait_for(lambda: successes(contract, actions.now_id), PATIENCE_S, what="the manual run")
    assert run["trace_id"] == trace_id and run["result"] == "'interval ok [5]'"
    assert run["scheduled_at"] >= actions.run_now_at - timedelta(seconds=1) and '"manual": true' in run["extra"]
    assert len(contract.runs(actions.now_id)) == 1


@pytest.mark.cells(CORE_CELLS)
def test_pause_and_resume(contract: ContractCell, actions: Actions) -> None:
    task_id = actions.pause_id
    wait_for(lambda: contract.task_status(task_id) == "paused", PATIENCE_S, what="status paused")
    contract.wait_past(after(actions.paused_at, PICKUP_S + 1))
    assert not runs_after(contract, task_id, after(actions.paused_at, PICKUP_S)), "fired while paused"
    wait_for(lambda: not contract.unfinished(task_id), PATIENCE_S, what="the fires claimed before the pause to end")
    executed = [r for r in runs_after(contract, task_id, after(actions.paused_at, CHANGE_WINS_S)) if r["started_at"]]
    assert not executed, "a fire claimed before the pause executed after it"

    resumed = contract.set(task_id, is_valid=1)
    wait_for(lambda: runs_after(contract, task_id, resumed), PATIENCE_S, what="a fire after resume")
    wait_for(lambda: contract.task_status(task_id) in ("ready", "doing"), PATIENCE_S, what="status ready")
    contract.set(task_id, is_valid=0)


@pytest.mark.cells(CORE_CELLS)
def test_delete(contract: ContractCell, actions: Actions) -> None:
    contract.wait_past(after(actions.deleted_at, PICKUP_S + 1))
    assert contract.task(actions.delete_id) is None
    assert not runs_after(contract, actions.delete_id, after(actions.deleted_at, PICKUP_S)), "fired after delete"
    wait_for(lambda: not contract.unfinished(actions.delete_id), PATIENCE_S, what="the claimed fires to end")
    executed = [r for r in runs_after(contract, actions.delete_id, after(actions.deleted_at, CHANGE_WINS_S))]
    assert not [r for r in executed if r["started_at"]], "a fire claimed before the delete executed after it"


@pytest.mark.cells(CORE_CELLS)
def test_edit_args_and_schedule(contract: ContractCell, actions: Actions) -> None:
    task_id, since = actions.edit_id, after(actions.edited_at, PICKUP_S)
    wait_for(
        lambda: len([r for r in runs_after(contract, task_id, since) if r["status"] == "success"]) >= 2,
        PATIENCE_S,
        what="two runs after the edit",
    )
    contract.set(task_id, is_valid=0)
    later = runs_after(contract, task_id, since)
    ran = [r for r in runs_after(contract, task_id, after(actions.edited_at, CHANGE_WINS_S)) if r["started_at"]]
    assert all(r["result"] == "'interval ok [7, 8]'" for r in ran if r["status"] == "success"), "stale args"
    gaps = [(b["scheduled_at"] - a["scheduled_at"]).total_seconds() for a, b in zip(later, later[1:], strict=False)]
    assert gaps and all(abs(g - 2) < 0.01 for g in gaps), gaps


@pytest.mark.cells(CORE_CELLS)
def test_max_instances_across_two_workers(contract: ContractCell, actions: Actions) -> None:
    task_id = actions.overlap_id
    wait_for(
        lambda: len(successes(contract, task_id)) >= 2 and contract.runs(task_id, "skipped"),
        PATIENCE_S,
        what="two finished runs and a skipped fire",
    )
    paused = contract.set(task_id, is_valid=0)
    contract.wait_past(after(paused, PICKUP_S))
    try:
        wait_for(lambda: not contract.unfinished(task_id), PATIENCE_S, what="the last runs to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{contract.explain(task_id, 'c_overlap')}") from None
    all_runs = contract.runs(task_id)
    assert all(r["status"] in ("success", "skipped") for r in all_runs), contract.explain(task_id, "c_overlap")
    ran = [r for r in all_runs if r["status"] == "success"]
    skipped = [r for r in all_runs if r["status"] == "skipped"]
    limited = [r for r in skipped if "max_instances=1 reached" in r["result"]]
    # Besides the limit: a fire not started when the pause came, or (a busy machine stalling beat
    # past a fire) a misfire.
    other = [r["result"] for r in skipped if r not in limited and not r["result"].startswith(("paused:", "misfire:"))]
    assert limited and not other, skipped
    events = sorted([(r["started_at"], 1) for r in ran] + [(r["finished_at"], -1) for r in ran])
    level = peak = 0
    for _at, step in events:
        level += step
        peak = max(peak, level)
    assert peak == 1, events
    started = [(int(a), int(b)) for a, b in _STARTED.findall(contract.logs())]
    mine = {r["id"] for r in ran}
    assert sorted(s for s in started if s[0] in mine) == sorted((r["id"], 1) for r in ran), "a run started twice"


@pytest.mark.cells(DATABASE_CELLS)
def test_lost_run_detection(contract: ContractCell, actions: Actions) -> None:
    assert actions.lost_id is not None and actions.killed_at is not None
    (lost,) = wait_for(
        lambda: contract.runs(actions.lost_id, "lost"), LOST_BOUND_S + 10, what="the killed run to become lost"
    )
    detected_s = (lost["finished_at"] - actions.killed_at).total_seconds()
    print(f"{contract.cell.id}: lost detected {detected_s:.1f}s after kill -9 (bound {LOST_BOUND_S}s)")
    assert "heartbeat" in (lost["error"] or ""), lost
    assert detected_s <= LOST_BOUND_S + 3  # the bound, plus beat's pass being late on a busy machine


@pytest.mark.cells(DATABASE_CELLS)
def test_misfire_coalescing(contract: ContractCell) -> None:
    task_id = contract.add("c_misfire", "test_interval", "interval", "1", misfire_grace_seconds=30)
    wait_for(lambda: successes(contract, task_id), PATIENCE_S, what="a first run")
    (beat,) = contract.live("beat")
    down = utcnow()  # before the stop: a busy beat may take seconds to exit, claiming nothing more
    beat.stop()
    # Beat stays down past its claimed-ahead fires and then three more (an outage, not a readiness wait).
    wait_for(lambda: utcnow() > after(down, PICKUP_S + 2.5), 30, what="three missed fires")
    contract.start_beat()
    up = utcnow()
    coalesced = wait_for(
        lambda: [
            r
            for r in contract.runs(task_id, "skipped")
            if "coalesced into" in (r["result"] or "") and down <= r["scheduled_at"] <= up
        ],
        PATIENCE_S,
        what="the coalesced row",
    )
    # Beat plans with its own clock after it is up, so the latest missed fire may be later than `up`,
    # never later than the moment its row was seen.
    seen = utcnow()
    into = datetime.fromisoformat(coalesced[0]["result"].rsplit("coalesced into ", 1)[1])
    (late,) = wait_for(
        lambda: [r for r in contract.runs(task_id) if r["scheduled_at"] == into and r["status"] in FINAL],
        PATIENCE_S,
        what="the latest missed fire to be handled",
    )
    assert late["status"] == "success", late
    contract.set(task_id, is_valid=0)
    assert len(coalesced) == 1, coalesced
    assert into.tzinfo is not None and down < into <= seen, coalesced
    assert into - coalesced[0]["scheduled_at"] >= timedelta(seconds=2), coalesced
    between = [r for r in contract.runs(task_id) if coalesced[0]["scheduled_at"] < r["scheduled_at"] < into]
    assert not between, "every missed fire before the latest is folded into the one skipped row"
    assert late["started_at"] > late["scheduled_at"]


@pytest.mark.cells(CORE_CELLS)
def test_run_invariant(contract: ContractCell) -> None:
    """Every run the suite made on this cell reaches a final status once the fires stop."""
    contract.sql("UPDATE task SET is_valid = 0 WHERE id <> :clock", clock=contract.clock_id)
    contract.wait_past(after(utcnow(), PICKUP_S))
    contract.set(contract.clock_id, is_valid=0)
    wait_for(lambda: not contract.unfinished(), PATIENCE_S, what="every run to reach a final status")
    for row in contract.sql("SELECT status, result, error, started_at, finished_at FROM execute_task"):
        status, result, error, started_at, finished_at = row
        if status == "success":
            assert started_at is not None and finished_at is not None, row
        elif status == "skipped":
            assert result, row  # the reason
        elif status in ("failed", "lost"):
            assert error, row
