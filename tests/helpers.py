"""Helpers shared by the test folders: plain SQL, a task row, a free port, a cluster's environment."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

REPO = Path(__file__).resolve().parents[1]


def sql(engine: Engine, statement: str, **params: object) -> list[tuple[Any, ...]]:
    """Run one plain SQL statement, as an operator would, and return its rows."""
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return [tuple(r) for r in result] if result.returns_rows else []


def insert_task(
    db: Engine,
    key: str,
    func: str,
    trigger: str = "interval",
    spec: str = "60",
    args: str = "",
    *,
    extra: str = "{}",
    desc: str = "test",
    **cols: object,
) -> int:
    """Insert a ``ready`` task row with plain SQL (as an operator would) and return its id.

    ``cols`` are further columns (``timezone``, ``max_instances``, ...).
    """
    extra_cols = "".join(f", {c}" for c in cols)
    extra_vals = "".join(f", :{c}" for c in cols)
    sql(
        db,
        "INSERT INTO task (task_key, `desc`, execute_func, `trigger`, spec, args, is_valid, status, extra"
        f"{extra_cols}) VALUES (:k, :d, :f, :t, :s, :a, 1, 'ready', :e{extra_vals})",
        k=key,
        d=desc,
        f=func,
        t=trigger,
        s=spec,
        a=args,
        e=extra,
        **cols,
    )
    return int(sql(db, "SELECT id FROM task WHERE task_key = :k", k=key)[0][0])


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_env(db_url: str, broker_url: str, *, refresh_seconds: float = 3, **extra: str) -> dict[str, str]:
    """Environment of celery processes a test starts: the ``test`` profile, this database and broker.

    Nothing ``TABLEBEAT_*`` (or ``APP_ENV``) is inherited from the test run itself.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_") and k != "APP_ENV"}
    env.update(
        APP_ENV="test",
        TABLEBEAT_DATABASE_URL=db_url,
        TABLEBEAT_BROKER_URL=broker_url,
        TABLEBEAT_REFRESH_SECONDS=str(refresh_seconds),
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env
