"""A stand-in for workers in beat benchmarks: closes the beats' published runs twice a second.

Two cores cannot run thousands of jobs a second beside the beats being measured. Without
anything closing runs, every fire stays ``pending``: housekeeping then scans a backlog growing by
the fire rate, and notes every task as waiting on a queue no worker consumes, which a deployment
whose workers keep up never does. The closer writes ``status = 'success'`` on its own connection
(its server id is known, so a case can leave it out of the beats' database CPU).
"""

from __future__ import annotations

import threading

from sqlalchemy import create_engine

from bench.context import CaseContext


class RunCloser(threading.Thread):
    """Stands in for workers: closes the beats' published runs twice a second on its own connection."""

    def __init__(self, ctx: CaseContext) -> None:
        super().__init__(name="bench-run-closer", daemon=True)
        self.engine = create_engine(ctx.env.db_url)
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        #: The server's id of this connection (MariaDB connection id, PostgreSQL backend pid).
        self.server_id = int(
            self.conn.exec_driver_sql(
                "SELECT pg_backend_pid()" if ctx.env.is_postgresql else "SELECT CONNECTION_ID()"
            ).scalar_one()
        )
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.5):
            self.conn.exec_driver_sql(
                "UPDATE execute_task SET status = 'success' WHERE status = 'pending' AND published_at IS NOT NULL"
            )

    def close(self) -> None:
        self._stop_event.set()
        self.join()
        self.conn.close()
        self.engine.dispose()
