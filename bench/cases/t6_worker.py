"""T6: N runs of the ``noop`` job through the recording worker vs N runs of a bare Celery no-op task.

Same worker command (``celery -A workers worker -c 2``), same message shape (args
``[task_key]``, kwargs ``sub_task_id`` + ``__unique_trace_id__``, header ``trace_id``).  With the
worker stopped, the queue is pre-filled: for ``noop`` the ``execute_task`` rows are inserted
``pending`` in bulk as beat's claim writes them and the messages are published through beat's own
``scheduler.dispatch.Publisher`` (``producer.batch()``); for the bare task the same messages name
``bench.bare_noop``.  Then the worker starts and the clock runs from its first consumed message
(``LLEN`` drops) until the queue is empty, nothing is unacked and, for ``noop``, every row is final.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench import measure, seed
from bench.bare_tasks import BARE_NOOP
from bench.context import CaseContext
from bench.env import running

TIMEOUT_S = 900.0
CONCURRENCY = 2


def _publisher(ctx: CaseContext) -> Any:
    from celery import Celery

    from scheduler.dispatch import Publisher

    app = Celery("tablebeat-bench-publisher", broker=ctx.env.redis_url, set_as_current=False)
    app.conf.task_ignore_result = True
    return app, Publisher(app, 1000)


def _fill(ctx: CaseContext, job_name: str) -> tuple[int, float]:
    """Insert the runs (noop) and publish their messages; returns (messages, publish seconds)."""
    from scheduler.dispatch import Dispatch

    ctx.fresh()
    n = ctx.rows
    anchor = seed.whole_second()
    seed.seed_tasks(ctx.env, n, trigger="interval", spec="3600", anchor=anchor, next_run_at=None)
    ids = seed.task_ids(ctx.env)
    keys = dict(ctx.env.rows("SELECT id, task_key FROM task"))
    scheduled = datetime.now(UTC)
    if job_name == "noop":
        runs = seed.seed_pending_runs(ctx.env, ids, scheduled)
    else:
        runs = [(i + 1, tid, uuid.uuid4().hex, str(uuid.uuid4())) for i, tid in enumerate(ids)]
    # As beat sends them: where Dispatch carries the task id and max_instances (headers that let
    # the worker start a fresh run with one UPDATE), fill them in too.
    fields = {f.name for f in dataclasses.fields(Dispatch)}
    dispatches = [
        Dispatch(
            run_id=run_id,
            task_key=keys[tid],
            job_name=job_name,
            args=(),
            kwargs={},
            queue=None,
            trace_id=trace,
            celery_id=cid,
            scheduled_at=scheduled,
            expires_at=None,
            **{k: v for k, v in (("task_id", tid), ("max_instances", 1)) if k in fields},
        )
        for run_id, tid, trace, cid in runs
    ]
    app, publisher = _publisher(ctx)
    t0 = time.perf_counter()
    publisher.publish(dispatches)
    took = time.perf_counter() - t0
    app.close()
    return len(dispatches), took


def _drain(ctx: CaseContext, name: str, recorded: bool) -> dict[str, Any]:
    n_msgs, publish_s = _fill(ctx, "noop" if recorded else BARE_NOOP)
    client = ctx.env.new_redis()
    queued = measure.llen(client)
    if queued != n_msgs:
        raise RuntimeError(f"expected {n_msgs} queued messages, found {queued}")

    def open_runs() -> int:
        return int(ctx.env.scalar("SELECT COUNT(*) FROM execute_task WHERE status IN ('pending', 'running')"))

    worker = ctx.env.start_worker(name, concurrency=CONCURRENCY, loglevel=ctx.worker_loglevel)
    with running(ctx.env, worker):
        deadline = time.monotonic() + TIMEOUT_S
        first: float | None = None
        cpu_at_first = 0.0
        while True:
            left = measure.llen(client)
            now = time.perf_counter()
            if first is None and left < queued:
                first = now
                # Start-up (imports, pool fork) is not a run's cost: CPU is counted from here.
                cpu_at_first = measure.tree_cpu_seconds(worker.pid)
            if left == 0 and int(client.hlen(measure.UNACKED_KEY)) == 0 and (not recorded or open_runs() == 0):
                done = time.perf_counter()
                break
            if not worker.alive():
                raise RuntimeError(f"worker exited:\n{worker.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: {left} messages still queued after {TIMEOUT_S}s")
            time.sleep(0.01 if left else 0.002)
        cpu = measure.tree_cpu_seconds(worker.pid)
    client.close()
    statuses = dict(ctx.env.rows("SELECT status, COUNT(*) FROM execute_task GROUP BY status")) if recorded else {}
    assert first is not None
    return {
        "drain_s": done - first,
        "from_spawn_s": done - worker.started_perf,
        "worker_cpu_s": cpu,
        "drain_cpu_s": cpu - cpu_at_first,
        "publish_s": publish_s,
        "messages": n_msgs,
        "statuses": statuses,
    }


def run(ctx: CaseContext) -> dict[str, Any]:
    bare = _drain(ctx, "t6-bare", recorded=False)
    ctx.log(f"  bare: {bare['messages']:,} in {bare['drain_s']:.2f}s")
    noop = _drain(ctx, "t6-noop", recorded=True)
    ctx.log(f"  noop: {noop['messages']:,} in {noop['drain_s']:.2f}s")
    ctx.dirty()
    return {
        "ratio": round(noop["drain_s"] / bare["drain_s"], 3),
        "noop_s": round(noop["drain_s"], 3),
        "bare_s": round(bare["drain_s"], 3),
        "noop_runs_per_s": round(noop["messages"] / noop["drain_s"], 1),
        "bare_runs_per_s": round(bare["messages"] / bare["drain_s"], 1),
        "noop_worker_cpu_s": round(noop["worker_cpu_s"], 2),
        "bare_worker_cpu_s": round(bare["worker_cpu_s"], 2),
        # From the first consumed message: what the runs cost, without the worker's start-up.
        "noop_drain_cpu_s": round(noop["drain_cpu_s"], 2),
        "bare_drain_cpu_s": round(bare["drain_cpu_s"], 2),
        "noop_from_spawn_s": round(noop["from_spawn_s"], 3),
        "bare_from_spawn_s": round(bare["from_spawn_s"], 3),
        "noop_statuses": noop["statuses"],
        "publish_msgs_per_s": round(noop["messages"] / noop["publish_s"], 1),
        "runs": noop["messages"],
        "concurrency": CONCURRENCY,
        "worker_loglevel": ctx.worker_loglevel,
    }
