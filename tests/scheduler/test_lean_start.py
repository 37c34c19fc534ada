"""``python -m scheduler`` starts without the broker transport: its banner names the broker from the
setting, and beat loads the transport once ticking (redis-py's imports were ~0.3 s of the start)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from celery.apps.beat import Beat
from celery.app.utils import find_app
from scheduler.__main__ import lean_beat
app = find_app("workers")
beat = lean_beat(app)(scheduler="scheduler.beat:SqlScheduler", quiet=True)
service = beat.Service(app=app, scheduler_cls=beat.scheduler_cls, schedule_filename=beat.schedule)
print(beat.startup_info(service))
print("transport before:", "kombu.transport.redis" in sys.modules)
service.get_scheduler(lazy=True).publisher.load_transport()
print("transport after:", "kombu.transport.redis" in sys.modules)
"""


def test_the_banner_names_the_broker_without_loading_its_transport(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_")}
    env.update(
        PYTHONPATH=str(REPO),
        TABLEBEAT_DATABASE_URL=f"sqlite:///{tmp_path / 'beat.db'}",
        TABLEBEAT_BROKER_URL="redis://:secret@127.0.0.1:6379/9",
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "broker -> redis://:**@127.0.0.1:6379/9" in done.stdout
    assert "secret" not in done.stdout
    assert "scheduler -> scheduler.beat.SqlScheduler" in done.stdout
    assert "transport before: False" in done.stdout
    assert "transport after: True" in done.stdout


LEAN_IMPORTS = """
import sys
import workers
from celery.app.utils import find_app
from scheduler.__main__ import lean_beat
app = find_app("workers")
workers.load_job_modules()
beat = lean_beat(app)(scheduler="scheduler.beat:SqlScheduler", quiet=True)
service = beat.Service(app=app, scheduler_cls=beat.scheduler_cls, schedule_filename=beat.schedule)
service.get_scheduler(lazy=True)
print("orm:", "sqlalchemy.orm" in sys.modules)
print("worker request:", "celery.worker.request" in sys.modules)
from models import Task
from models.tables import task_table
print("orm after asking for Task:", "sqlalchemy.orm" in sys.modules, Task.__table__ is task_table)
"""


def test_beat_loads_neither_the_orm_nor_the_worker_request_class(tmp_path: Path) -> None:
    """Beat builds its statements from Core tables (``models.tables``) and names the worker's request
    class by path: the ORM (5-6 MiB) and ``celery.worker.request`` (1.1 MiB) stay out of its process;
    the ORM models, asked for, map the same tables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_")}
    env.update(PYTHONPATH=str(REPO), TABLEBEAT_DATABASE_URL=f"sqlite:///{tmp_path / 'beat.db'}")
    done = subprocess.run(
        [sys.executable, "-c", LEAN_IMPORTS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "orm: False" in done.stdout
    assert "worker request: False" in done.stdout
    assert "orm after asking for Task: True True" in done.stdout
