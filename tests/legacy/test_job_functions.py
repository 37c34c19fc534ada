"""Job functions as the earlier systems wrote them: no arguments, named parameters, or the 001 shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.helpers import sql
from tests.legacy.conftest import JOBS_DIR, LEGACY_JOB_MODULES, REPO
from tests.processes import Cluster, wait_for
from workers.signatures import CallShape

CONTEXT = {"sub_task_id": 7, "__unique_trace_id__": "t" * 32}


def zero():
    return "zero"


def named(user_id, message, channel="email"):
    return user_id, message, channel


def legacy(task_key, *args, **kwargs):
    return task_key, args, kwargs


def other_name(key, *args, **kwargs):
    return key, args


def keyword_task_key(*, task_key, sub_task_id):
    return task_key, sub_task_id


def call(func, args=(), kwargs=None):
    shape = CallShape.of(func.__name__, func)
    call_args, call_kwargs = shape.arguments("the-key", tuple(args), {**(kwargs or {}), **CONTEXT})
    return func(*call_args, **call_kwargs)


def test_zero_argument_job_gets_nothing() -> None:
    assert call(zero) == "zero"


def test_named_parameters_get_the_task_kwargs_only() -> None:
    assert call(named, kwargs={"user_id": "u1", "message": "hi"}) == ("u1", "hi", "email")
    assert call(named, args=["u2", "yo", "sms"]) == ("u2", "yo", "sms")


def test_legacy_shape_gets_task_key_args_and_context() -> None:
    assert call(legacy, args=[1, 2], kwargs={"x": 1}) == ("the-key", (1, 2), {"x": 1, **CONTEXT})
    assert call(other_name, args=[3]) == ("the-key", (3,))
    assert call(keyword_task_key) == ("the-key", 7)


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "needle"),
    [
        (zero, [1], {}, "takes 0 positional argument(s) besides task_key"),
        (named, [], {"user_id": "u", "message": "m", "colour": "red"}, "takes no argument 'colour'"),
        (named, [1, 2, 3, 4], {}, "takes 3 positional argument(s)"),
    ],
)
def test_a_row_that_does_not_fit_names_the_job_and_the_reason(func, args, kwargs, needle) -> None:
    with pytest.raises(TypeError, match=r".*") as info:
        call(func, args, kwargs)
    assert needle in str(info.value) and repr(func.__name__) in str(info.value)


# --------------------------------------------------------------------------- import paths

_PROBE = r"""
import json, sys
import workers
from scheduler.specs import validate_job_name
from scheduler.errors import RowError
registered = workers.load_job_modules()
names = json.loads(sys.argv[1])
out = {}
for name in names:
    try:
        validate_job_name(name, registered)
        out[name] = "ok"
    except RowError as exc:
        out[name] = exc.reason
out["__modules__"] = sorted(m for m in sys.modules if m.split(".")[0] in ("outside", "knowledge_api", "scheduler"))
print(json.dumps(out))
"""

LISTED = "knowledge_api.framework.task_manage.example_tasks"
ACCEPTED = [
    f"{LISTED}:notification_task",
    f"{LISTED}.notification_task",
    "scheduler.module.sync_tasks:sync_project_data",
    "scheduler.module.sync_tasks.daily_report",
    "workers.examples:test_cron",
    "test_cron",
    "notification_task",  # bare names of listed modules' functions (001 rows name them so)
    "sync_project_data",
]
#: Names just outside the list: siblings, parents, children, imported names, privates, other modules.
HOSTILE = [
    f"{LISTED}_x:notification_task",
    f"{LISTED}x.notification_task",
    "knowledge_api.framework.task_manage:example_tasks",
    "knowledge_api.framework.task_manage.example_tasks",
    f"{LISTED}:_private_helper",
    f"{LISTED}:join",
    f"{LISTED}.join",
    f"{LISTED}._os.system",
    f"{LISTED}:_os",
    f"{LISTED}.notification_task.__globals__",
    f"{LISTED}:notification_task:x",
    f"{LISTED}.sub:notification_task",
    "scheduler.module:sync_tasks",
    "scheduler.module.sync_tasks2:sync_project_data",
    "scheduler.beat:SqlScheduler",
    "scheduler.specs.validate_job_name",
    "workers.registry:job",
    "workers.examples:_describe",
    "workers.examples.logger",
    "outside.evil:run",
    "outside.evil.run",
    "os:system",
    "os.system",
    "subprocess.call",
    "builtins:eval",
    "__import__",
    "join",
    "_private_helper",
    "evil",
    "run",
]


def test_import_paths_only_inside_the_listed_modules(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    env = {
        "PYTHONPATH": f"{REPO}:{JOBS_DIR}",
        "TABLEBEAT_JOB_MODULES": LEGACY_JOB_MODULES,
        "TABLEBEAT_TEST_IMPORT_MARKER": str(marker),
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(ACCEPTED + HOSTILE)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ACCEPTED:
        assert out[name] == "ok", (name, out[name])
    for name in HOSTILE:
        assert "is not a registered job" in out[name], (name, out[name])
    assert not marker.exists(), "a module outside TABLEBEAT_JOB_MODULES was imported"
    assert not [m for m in out["__modules__"] if m.startswith("outside")]
    assert "scheduler.module.sync_tasks2" not in out["__modules__"]


# --------------------------------------------------------------------------- real beat + worker


def _insert(db: Engine, key: str, func: str, spec: str, args: str = "", kwargs: str = "{}") -> int:
    sql(
        db,
        "INSERT INTO task (task_key, execute_func, `trigger`, spec, args, kwargs, is_valid, status, extra) "
        "VALUES (:k, :f, 'interval', :s, :a, :kw, 1, 'ready', '{}')",
        k=key,
        f=func,
        s=spec,
        a=args,
        kw=kwargs,
    )
    return int(sql(db, "SELECT id FROM task WHERE task_key = :k", k=key)[0][0])


def _first_finished(db: Engine, task_id: int) -> tuple:
    def done() -> list[tuple]:
        return sql(
            db,
            "SELECT status, result, error FROM execute_task WHERE task_id = :t AND status IN ('success', 'failed') "
            "ORDER BY id LIMIT 1",
            t=task_id,
        )

    return wait_for(done, 30, what=f"a finished run of task {task_id}")[0]


@pytest.mark.integration
@pytest.mark.mariadb
def test_every_function_shape_runs_on_a_real_worker(legacy_cluster: Cluster, db: Engine) -> None:
    zero_id = _insert(db, "sync", "scheduler.module.sync_tasks:sync_project_data", "1")
    named_id = _insert(
        db,
        "notify",
        f"{LISTED}.notification_task",
        "1",
        kwargs=json.dumps({"user_id": "user123", "message": "hello", "channel": "email"}),
    )
    legacy_id = _insert(db, "legacy", "test_interval", "1", args="1,2,3")
    assert _first_finished(db, zero_id)[:2] == ("success", "'synced'")
    assert _first_finished(db, named_id)[:2] == ("success", "'notified user123 via email: hello'")
    assert _first_finished(db, legacy_id)[:2] == ("success", "'interval ok [1, 2, 3]'")


def test_bind_true_jobs_get_celery_task_first() -> None:
    def bound(self, task_key, *args, **kwargs):
        return self, task_key, args

    shape = CallShape.of("bound", bound, bound=True)
    assert shape.task_key == "positional"
    call_args, call_kwargs = shape.arguments("k", (1,), CONTEXT)
    assert bound("TASK", *call_args, **call_kwargs) == ("TASK", "k", (1,))
    with pytest.raises(TypeError, match="bind=True"):
        CallShape.of("bad", zero, bound=True)
