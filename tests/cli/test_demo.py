"""``tablebeat demo`` in a real process: one line per finished run on stdout, Celery's logs in a file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from models import Task, make_engine
from models.migrate import upgrade
from tests.processes import READY_TIMEOUT_S, REPO, wait_for

pytestmark = pytest.mark.integration

RUN_LINE = re.compile(r"^(success|failed|skipped|lost|expired) +run +\d+ ")


def _seed_fast_rows(url: str) -> None:
    """The demo's failing job every 2 s instead of 20 s, so a failed run shows within seconds."""
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        for key, func, args in (("always_fails", "always_fails", "42"), ("quick", "test_interval", "1,2")):
            conn.execute(
                Task.__table__.insert().values(
                    task_key=key,
                    desc="",
                    execute_func=func,
                    trigger="interval",
                    spec="2",
                    args=args,
                    is_valid=1,
                    status="ready",
                    extra="{}",
                    kwargs="{}",
                )  # fmt: skip
            )
    engine.dispose()


def test_demo_prints_one_line_per_finished_run(tmp_path: Path) -> None:
    _seed_fast_rows(f"sqlite:///{tmp_path / 'tablebeat.db'}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLEBEAT_", "APP_ENV", "COLUMNS"))}
    env["PYTHONPATH"] = str(REPO)
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "demo", "--log-file", "demo-processes.log"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the demo and its beat + worker form one group, killed at the end
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(
            lambda: (
                any(line.startswith("failed") for line in lines) and any(line.startswith("success") for line in lines)
            ),
            90,
            what="a failed and a successful run line",
        )
        demo.send_signal(signal.SIGINT)  # what Ctrl-C does: the demo stops its beat + worker
        try:
            assert demo.wait(timeout=READY_TIMEOUT_S) == 0
        except subprocess.TimeoutExpired:
            logs = (tmp_path / "demo-processes.log").read_text(errors="replace")
            output = "".join(lines)
            raise AssertionError(f"the demo did not stop; its output:\n{output}\nlogs:\n{logs[-4000:]}") from None
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    reader.join(timeout=5)

    header, runs = lines[:3], lines[3:]
    log_file = tmp_path / "demo-processes.log"
    assert f"beat and worker logs: {log_file}" in "".join(header)
    assert runs and all(RUN_LINE.match(line) for line in runs), "".join(lines)
    failed = next(line for line in runs if line.startswith("failed"))
    assert failed.rstrip().endswith("RuntimeError: always_fails failed on purpose (args=(42,))"), failed
    assert "['" not in failed and "Traceback" not in "".join(lines)
    logs = log_file.read_text(errors="replace")
    assert "Traceback" in logs and "celery@" in logs  # Celery's own lines went to the file


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_demo_killed_stops_its_beat_and_worker(tmp_path: Path, stop: signal.Signals) -> None:
    """``kill`` (or a closed terminal) ends the demo's beat + worker too, never leaving them orphaned."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLEBEAT_", "APP_ENV", "COLUMNS"))}
    env["PYTHONPATH"] = str(REPO)
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "demo", "--log-file", "demo-processes.log"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its process group: the demo, its worker and the worker's children
    )
    log_file = tmp_path / "demo-processes.log"
    try:
        wait_for(
            lambda: log_file.exists() and "ready." in log_file.read_text(errors="replace"), 90, what="the worker ready"
        )
        demo.send_signal(stop)
        assert demo.wait(timeout=30) == 0
        wait_for(lambda: not _group_alive(demo.pid), 30, what="the demo's worker and beat to exit")
    finally:
        if _group_alive(demo.pid):
            os.killpg(demo.pid, signal.SIGKILL)
        demo.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
