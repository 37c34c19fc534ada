"""protocol/sqla_transport.py: processes that create the same broker queue at once on a new SQLite
broker all go on (kombu's own channel let the loser's IntegrityError end a worker)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from protocol.sqla_transport import Channel
from workers.celery_app import SQLA_TRANSPORT

PROCESSES = 6

DECLARE = textwrap.dedent(
    """
    import sys, time
    import workers  # installs the transport alias, as every beat and worker process does
    from kombu import Connection
    start_at = float(sys.argv[2])
    with Connection(sys.argv[1]) as conn:
        channel = conn.channel()
        print(type(channel).__module__)
        while time.time() < start_at:  # every process reaches the first lookup together
            pass
        channel._new_queue("celery")
        channel._put("celery", {"body": sys.argv[3]})
    """
)


def test_the_broker_url_schemes_resolve_to_the_safe_transport() -> None:
    from kombu.transport import resolve_transport

    assert SQLA_TRANSPORT == "protocol.sqla_transport:Transport"
    assert resolve_transport("sqla").Channel is Channel
    assert resolve_transport("sqlalchemy").Channel is Channel


@pytest.mark.parametrize("attempt", range(3))
def test_processes_creating_one_queue_at_once_all_go_on(tmp_path: Path, attempt: int) -> None:
    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    start_at = time.time() + 3.0  # after every process has imported and connected
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DECLARE, url, str(start_at), f"m{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    outcomes = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        outcomes.append((proc.returncode, out.strip(), err[-800:]))
    assert all(code == 0 for code, _out, _err in outcomes), outcomes
    assert {out for _code, out, _err in outcomes} == {"protocol.sqla_transport"}
    engine = create_engine(f"sqlite:///{tmp_path / 'broker.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM kombu_queue WHERE name = 'celery'")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM kombu_message")).scalar() == PROCESSES
    finally:
        engine.dispose()
