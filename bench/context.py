"""What every case receives: the environment, its size, and shared seeding of the idle table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bench import seed
from bench.env import BenchEnv

#: Interval of the "idle" rows of T1/T2/T3/T7: long enough that nothing fires during a run.
IDLE_INTERVAL_S = 3600


@dataclass
class CaseContext:
    env: BenchEnv
    rows: int
    #: Measurement window of T2 / T5 (seconds).
    seconds: float = 60.0
    #: Repetitions of T3 (edits) and T7 (probes).
    reps: int | None = None
    #: T4 cron period: 60 = ``* * * * *`` (the target); 10 = ``* * * * * */10`` (quick runs).
    t4_period: int = 60
    #: T6 worker log level (same for both runs).
    worker_loglevel: str = "info"
    #: Beats sharing T5's fires (issue 14 item 2: several beats divide the due rows).
    beats: int = 1
    #: T5: a stand-in for workers closes published runs (``bench/run_closer.py``).
    close_runs: bool = False
    log: Callable[[str], None] = print
    state: dict[str, Any] = field(default_factory=dict)

    def ensure_idle_rows(self) -> dict[str, Any]:
        """``rows`` enabled interval rows that will not fire for an hour, as a settled beat leaves them.

        Reused by T1, T2, T7 and T3 when the table already holds exactly this seed.
        """
        key = ("idle", self.rows)
        if self.state.get("seeded") == key:
            return self.state["seed_info"]
        seed.empty_tables(self.env)
        self.env.flush_broker()
        anchor = seed.whole_second()
        took = seed.seed_tasks(
            self.env,
            self.rows,
            trigger="interval",
            spec=str(IDLE_INTERVAL_S),
            anchor=anchor,
            next_run_at=anchor + timedelta(seconds=IDLE_INTERVAL_S),
        )
        info = {"seed_rows": self.rows, "seed_s": round(took, 3), "seed_rows_per_s": round(self.rows / took)}
        self.log(f"  seeded {self.rows:,} idle rows in {took:.2f}s")
        self.state["seeded"] = key
        self.state["seed_info"] = info
        return info

    def dirty(self) -> None:
        """The case changed the table: the next case reseeds."""
        self.state.pop("seeded", None)

    def fresh(self) -> None:
        """Empty tables and broker for a case that seeds its own data."""
        seed.empty_tables(self.env)
        self.env.flush_broker()
        self.dirty()

    def wait_until(self, ts: float) -> None:
        while True:
            left = ts - time.time()
            if left <= 0:
                return
            time.sleep(min(left, 0.5) if left > 0.01 else 0.0005)
