"""Chaos run (issue 4 item 8): 2 beats + 2 workers on MariaDB + Redis, one killed -9 and restarted
every 10-20 s, then ``execute_task`` is checked against the schedule.

    python -m bench.chaos --minutes 5            # 200 tasks, second-level schedules

It prints, for the fires due in the run window: expected (from each row's trigger), rows,
dispatched (rows that ran or were meant to run), skipped (misfire policy), doubled
``(task_id, scheduled_at)`` keys, runs executed twice (the same run attempt started twice, from
the workers' logs), missing fires (neither a row nor covered by a coalesced ``skipped`` row),
unexpected rows (off the schedule), early starts, and rows stuck ``pending``/``running`` after the
run settles. The exit status is 0 only if doubled, executed-twice, missing, unexpected and stuck
are all zero.

Services: ``TABLEBEAT_TEST_MARIADB_URL`` (admin URL, default root@127.0.0.1:3306; a fresh database
is created and dropped) and the local Redis (a free database number, as the tests take one).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models import make_engine  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from scheduler.specs import parse_timezone  # noqa: E402
from scheduler.triggers import build_trigger  # noqa: E402
from tests.processes import CeleryProcess, redis_broker_db  # noqa: E402

INTERVALS = (2, 3, 5, 7, 10)
CRONS = ("* * * * * */5", "* * * * * */10", "* * * * * */3")
_STARTED = re.compile(r"run (\d+) started \(attempt (\d+)\)")
_COALESCED = re.compile(r"misfire: fires from (\S+) to (\S+) were missed and coalesced into (\S+)")


@dataclass
class Knobs:
    """Settings of the cluster under test (short, so crashes settle quickly)."""

    refresh_s: float = 3.0
    stale_claim_s: float = 3.0
    worker_dead_s: float = 6.0
    heartbeat_s: float = 1.0
    visibility_s: int = 12
    grace_s: int = 60
    #: A run left pending (its message acked by a worker killed before the start) is published again
    #: after this; the default, 120 s, is longer than a short chaos run's settling.
    republish_s: float = 15.0

    def env(self, db_url: str, broker_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_") and k != "APP_ENV"}
        env.update(
            TABLEBEAT_DATABASE_URL=db_url,
            TABLEBEAT_BROKER_URL=broker_url,
            TABLEBEAT_REFRESH_SECONDS=str(self.refresh_s),
            TABLEBEAT_STALE_CLAIM_SECONDS=str(self.stale_claim_s),
            TABLEBEAT_WORKER_DEAD_SECONDS=str(self.worker_dead_s),
            TABLEBEAT_HEARTBEAT_SECONDS=str(self.heartbeat_s),
            TABLEBEAT_VISIBILITY_TIMEOUT_SECONDS=str(self.visibility_s),
            TABLEBEAT_MISFIRE_GRACE_SECONDS=str(self.grace_s),
            TABLEBEAT_PENDING_REPUBLISH_SECONDS=str(self.republish_s),
            PYTHONPATH=str(REPO),
        )
        return env

    @property
    def settle_s(self) -> float:
        """Long enough for lost detection, un-acked redelivery, the outbox sweep and a pending run's republish."""
        redelivery = self.visibility_s + max(1, min(10, self.visibility_s // 4))
        return max(redelivery, self.republish_s) + self.worker_dead_s + 3 * self.refresh_s + 20


@dataclass
class Report:
    """The counts a chaos run prints."""

    tasks: int = 0
    window_s: float = 0.0
    kills: dict[str, int] = field(default_factory=dict)
    expected: int = 0
    rows: int = 0
    dispatched: int = 0
    skipped: int = 0
    covered_by_coalescing: int = 0
    doubled: int = 0
    executed_twice: int = 0
    missing: int = 0
    unexpected: int = 0
    early: int = 0
    stuck: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    attempts_above_1: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.doubled or self.executed_twice or self.missing or self.unexpected or self.stuck or self.early)

    def lines(self) -> list[str]:
        return [
            f"tasks={self.tasks} window={self.window_s:.0f}s kills={self.kills}",
            f"fires expected={self.expected} rows={self.rows} dispatched={self.dispatched} "
            f"skipped={self.skipped} (covering {self.covered_by_coalescing} coalesced instants)",
            f"doubled={self.doubled} executed_twice={self.executed_twice} missing={self.missing} "
            f"unexpected={self.unexpected} early={self.early} stuck={self.stuck}",
            f"statuses={self.statuses} reruns(attempt>1)={self.attempts_above_1}",
            f"skip reasons={self.skip_reasons}",
        ]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: str) -> datetime:
    return _aware(datetime.fromisoformat(value))


def _reason(result: str | None) -> str:
    """A skipped row's reason without its numbers: 'max_instances reached', 'misfire: coalesced', ..."""
    text_ = result or ""
    if text_.startswith("max_instances"):
        return "max_instances reached"
    if "coalesced into" in text_:
        return "misfire: coalesced"
    if text_.startswith("misfire"):
        return "misfire: beyond grace"
    return text_.split(":")[0][:40] or "?"


def check(engine: Engine, start: datetime, end: datetime, worker_logs: str, default_grace_s: int = 60) -> Report:
    """Compare ``execute_task`` with every task's trigger for fires due in ``[start, end]``."""
    report = Report(window_s=(end - start).total_seconds())
    with engine.connect() as conn:
        tasks = conn.execute(
            text("SELECT id, `trigger`, spec, timezone, COALESCE(update_at, create_at) FROM task")
        ).all()
        rows = conn.execute(
            text("SELECT id, task_id, scheduled_at, status, result, started_at, attempt FROM execute_task")
        ).all()
        report.doubled = int(
            conn.scalar(
                text(
                    "SELECT COUNT(*) FROM (SELECT task_id, scheduled_at FROM execute_task "
                    "GROUP BY task_id, scheduled_at HAVING COUNT(*) > 1) d"
                )
            )
            or 0
        )
    report.tasks = len(tasks)
    by_task: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_task[int(row.task_id)].append(row)
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    for task in tasks:
        anchor = _aware(task[4])
        trigger = build_trigger(task[1], task[2], parse_timezone(task[3], "UTC"), anchor)
        expected: list[datetime] = []
        at = trigger.next_after(max(anchor, start) - timedelta(microseconds=1))
        while at is not None and at <= end:
            expected.append(at)
            at = trigger.next_after(at)
        mine = [r for r in by_task.get(int(task[0]), []) if start <= _aware(r.scheduled_at) <= end]
        instants = {_aware(r.scheduled_at) for r in mine}
        covered: list[tuple[datetime, datetime]] = []
        for r in mine:
            statuses[r.status] += 1
            if r.status == "skipped":
                report.skipped += 1
                reasons[_reason(r.result)] += 1
                found = _COALESCED.search(r.result or "")
                if found:
                    covered.append((_iso(found.group(1)), _iso(found.group(3))))
            else:
                report.dispatched += 1
            if r.status in ("pending", "running"):
                report.stuck += 1
                examples["stuck"].append(f"run {r.id} task {task[0]} {r.status} {r.scheduled_at}")
            if (r.attempt or 1) > 1:
                report.attempts_above_1 += 1
            if r.started_at is not None and _aware(r.started_at) < _aware(r.scheduled_at) - timedelta(milliseconds=5):
                report.early += 1
                examples["early"].append(f"run {r.id} started {r.started_at} before {r.scheduled_at}")
        expected_set = set(expected)
        for instant in expected:
            if instant in instants:
                continue
            if any(lo <= instant < hi for lo, hi in covered):
                report.covered_by_coalescing += 1
                continue
            report.missing += 1
            examples["missing"].append(f"task {task[0]} ({task[1]} {task[2]}) at {instant.isoformat()}")
        for instant in instants - expected_set:
            report.unexpected += 1
            examples["unexpected"].append(f"task {task[0]} ({task[1]} {task[2]}) at {instant.isoformat()}")
        report.expected += len(expected)
        report.rows += len(mine)
    report.statuses = dict(statuses)
    report.skip_reasons = dict(reasons)
    starts = Counter(_STARTED.findall(worker_logs))
    twice = [k for k, n in starts.items() if n > 1]
    report.executed_twice = len(twice)
    examples["executed_twice"] = [f"run {a} attempt {b}" for a, b in twice]
    report.examples = {k: v[:5] for k, v in examples.items() if v}
    return report


def insert_tasks(engine: Engine, count: int, rng: random.Random) -> None:
    """``count`` tasks on second-level interval and cron schedules: mostly ``noop``; one in ten
    sleeps 1 s (a kill catches it mid-run: ``lost``), one in twenty of those with ``acks_late``
    (redelivered and run again as attempt 2)."""
    values = []
    for i in range(count):
        func, args = "noop", ""
        if i % 4 == 3:
            trigger, spec = "cron", rng.choice(CRONS)
        else:
            trigger, spec = "interval", str(rng.choice(INTERVALS))
        if i % 20 in (0, 10):
            func, args, trigger, spec = ("sleep_for" if i % 20 == 0 else "slow_acks_late"), "1", "interval", "5"
        values.append({"k": f"chaos_{i:04d}", "f": func, "a": args, "t": trigger, "s": spec})
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO task (task_key, `desc`, execute_func, `trigger`, spec, args, is_valid, status, extra) "
                "VALUES (:k, 'chaos', :f, :t, :s, :a, 1, 'ready', '{}')"
            ),
            values,
        )


class Chaos:
    """Two beats and two workers with fixed names; kill -9 and restart one at random."""

    def __init__(self, env: dict[str, str], log_dir: Path, rng: random.Random) -> None:
        self.env = env
        self.log_dir = log_dir
        self.rng = rng
        self.procs: dict[str, CeleryProcess] = {}
        self.kills: Counter[str] = Counter()

    def start(self, name: str) -> None:
        if name.startswith("beat"):
            proc = CeleryProcess("beat", ["-l", "info"], self.env, self.log_dir, name)
        else:
            proc = CeleryProcess(
                "worker",
                ["-l", "info", "-c", "2", "-n", f"{name}@chaos", "--without-mingle", "--without-gossip"],
                self.env,
                self.log_dir,
                name,
            )
        self.procs[name] = proc

    def start_all(self) -> None:
        for name in ("beat-a", "beat-b", "worker-a", "worker-b"):
            self.start(name)

    def kill_one(self) -> str:
        name = self.rng.choice(sorted(self.procs))
        proc = self.procs[name]
        proc.signal(signal.SIGKILL)  # the whole process group, pool children included
        proc.stop()  # reaps it
        self.kills[name] += 1
        time.sleep(self.rng.uniform(0.0, 2.0))
        self.start(name)  # same name: a restarted worker is a new incarnation of the same host
        return name

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.stop()

    def worker_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.log_dir.glob("worker-*.log"))


def _fresh_database(admin_url: str) -> tuple[str, Any]:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"tb_chaos_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = make_url(admin_url).set(database=name).update_query_dict({"charset": "utf8mb4"})

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


def wait_settled(engine: Engine, end: datetime, timeout_s: float) -> float:
    """Wait until no run due in the window is pending/running (or the timeout); returns seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        with engine.connect() as conn:
            busy = conn.scalar(
                text("SELECT COUNT(*) FROM execute_task WHERE status IN ('pending', 'running') AND scheduled_at <= :e"),
                {"e": end.replace(tzinfo=None)},
            )
        if not busy:
            break
        time.sleep(1.0)
    return time.monotonic() - began


def run(
    minutes: float,
    tasks: int = 200,
    seed: int | None = None,
    kill_every: tuple[float, float] = (10.0, 20.0),
    knobs: Knobs | None = None,
    log_dir: Path | None = None,
    admin_url: str | None = None,
    out=print,
) -> Report:
    """One chaos run; returns its :class:`Report` (also printed through ``out``)."""
    knobs = knobs or Knobs()
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="tablebeat-chaos-"))
    admin_url = admin_url or os.environ.get("TABLEBEAT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
    db_url, drop = _fresh_database(admin_url)
    engine = None
    chaos = None
    try:
        upgrade(db_url)
        engine = make_engine(db_url)
        with redis_broker_db() as broker_url:
            chaos = Chaos(knobs.env(db_url, broker_url), log_dir, rng)
            out(f"chaos: seed={seed} tasks={tasks} minutes={minutes} logs={log_dir}")
            insert_tasks(engine, tasks, rng)
            start = datetime.now(UTC)
            chaos.start_all()
            deadline = time.monotonic() + minutes * 60
            while True:
                pause = rng.uniform(*kill_every)
                if time.monotonic() + pause > deadline:
                    break
                time.sleep(pause)
                killed = chaos.kill_one()
                out(f"chaos: t+{(datetime.now(UTC) - start).total_seconds():.0f}s kill -9 {killed}, restarted")
            time.sleep(max(deadline - time.monotonic(), 0))
            end = datetime.now(UTC) - timedelta(seconds=1)
            waited = wait_settled(engine, end, knobs.settle_s + 60)
            out(f"chaos: settled {waited:.0f}s after the window closed")
            report = check(engine, start, end, chaos.worker_logs(), knobs.grace_s)
            report.kills = dict(chaos.kills)
            chaos.stop_all()
            chaos = None
    finally:
        if chaos is not None:
            chaos.stop_all()
        if engine is not None:
            engine.dispose()
        drop()
    for line in report.lines():
        out(f"chaos: {line}")
    for kind, items in report.examples.items():
        out(f"chaos: e.g. {kind}: {items}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--log-dir", type=Path)
    parser.add_argument("--json", action="store_true", help="print the report as JSON at the end")
    args = parser.parse_args(argv)
    report = run(args.minutes, args.tasks, args.seed, log_dir=args.log_dir)
    if args.json:
        print(json.dumps({k: v for k, v in asdict(report).items()}, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
