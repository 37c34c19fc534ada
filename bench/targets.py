"""T1-T8: what each target measures, its default size and window, its thresholds (issue 14's, tightening issue 6's)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}


@dataclass(frozen=True)
class Check:
    """One measured number compared with its target."""

    key: str
    label: str
    op: str
    threshold: float
    unit: str = ""
    #: When set, the threshold is ``threshold * rows / scale_rows`` (T5 fires/s at other sizes).
    scale_rows: int | None = None

    def limit(self, rows: int) -> float:
        if self.scale_rows:
            return self.threshold * rows / self.scale_rows
        return self.threshold

    def evaluate(self, metrics: dict[str, Any], rows: int) -> dict[str, Any]:
        value = metrics.get(self.key)
        limit = self.limit(rows)
        ok: bool | None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            ok, ratio = None, None
        else:
            ok = _OPS[self.op](float(value), limit)
            ratio = (max(float(value), 0.0) / limit) if limit else None
        return {
            "key": self.key,
            "label": self.label,
            "op": self.op,
            "target": limit,
            "unit": self.unit,
            "measured": value,
            "pass": ok,
            "ratio": ratio,
        }


@dataclass(frozen=True)
class Target:
    id: str
    title: str
    module: str
    default_rows: int
    checks: tuple[Check, ...] = field(default_factory=tuple)
    #: Measurement window when ``--seconds`` is not given (T2, T5, T8 use one).
    default_seconds: float = 60.0


TARGETS: dict[str, Target] = {
    t.id: t
    for t in (
        Target(
            "T1",
            "beat start, N enabled rows: start -> ready; peak RSS (issue 14: any N up to 1,000,000)",
            "bench.cases.t1_startup",
            100_000,
            (
                Check("startup_s", "start -> ready", "<=", 1.0, "s"),
                Check("peak_rss_mb", "peak RSS (VmHWM)", "<=", 80.0, "MiB"),
            ),
        ),
        Target(
            "T2",
            "beat CPU while idle, N rows",
            "bench.cases.t2_idle",
            100_000,
            (Check("beat_cpu_s_per_min", "beat CPU per minute", "<=", 0.1, "CPU-s"),),
        ),
        Target(
            "T3",
            "SQL UPDATE makes one of N rows due -> message in broker",
            "bench.cases.t3_pickup",
            100_000,
            (
                Check("median_s", "edit -> message, median", "<=", 0.5, "s"),
                Check("max_s", "edit -> message, max", "<=", 10.0, "s"),
            ),
        ),
        Target(
            "T4",
            "100,000 rows on `* * * * *`: boundary -> all in broker and execute_task",
            "bench.cases.t4_burst",
            100_000,
            (
                Check("first_message_s", "boundary -> first message", "<=", 0.05, "s"),
                Check("all_messages_s", "boundary -> all messages", "<=", 3.0, "s"),
                Check("all_rows_s", "boundary -> all execute_task rows", "<=", 3.0, "s"),
                Check("missed", "missed fires", "==", 0),
                Check("doubled", "doubled fires", "==", 0),
            ),
        ),
        Target(
            "T5",
            "5,000 rows on interval 1 s, sustained",
            "bench.cases.t5_sustained",
            5_000,
            (
                Check("fires_per_s", "fires/s sustained", ">=", 4975.0, "/s", scale_rows=5000),
                Check("p99_lateness_s", "p99 scheduled_at -> published_at", "<=", 0.2, "s"),
                Check("missed", "missed fires", "==", 0),
            ),
        ),
        Target(
            "T6",
            "recording worker vs bare Celery task, 20,000 no-op runs, -c 2",
            "bench.cases.t6_worker",
            20_000,
            (Check("ratio", "time ratio noop / bare", "<=", 1.15, "x"),),
        ),
        Target(
            "T7",
            "one sync that finds nothing changed, 100,000 rows",
            "bench.cases.t7_sync",
            100_000,
            (
                Check("probe_ms", "change-log probe (every poll), median", "<=", 5.0, "ms"),
                Check("refresh_sync_ms", "probe + fingerprint (every refresh), median", "<=", 5.0, "ms"),
            ),
        ),
        Target(
            "T8",
            "N rows on interval 1 s shared by 3 beats vs 1 beat (issue 14 item 2)",
            "bench.cases.t8_beats",
            1_000,
            (
                Check("db_cpu_per_fire_ratio", "DB CPU per fire, 3 beats / 1 (beats' connections)", "<=", 1.5, "x"),
                Check("db_server_cpu_per_fire_ratio", "DB CPU per fire, 3 beats / 1 (whole server)", "<=", 1.5, "x"),
                Check("beats_claiming", "beats that claimed fires (of 3)", "==", 3),
                Check("duplicates", "duplicate fires (rows + messages, both runs)", "==", 0),
                Check("missed", "missed fires (both runs)", "==", 0),
            ),
            default_seconds=30.0,
        ),
    )
}


def select(only: list[str] | None) -> list[Target]:
    if not only:
        return list(TARGETS.values())
    wanted = [o.strip().upper() for item in only for o in item.split(",") if o.strip()]
    unknown = [w for w in wanted if w not in TARGETS]
    if unknown:
        raise SystemExit(f"--only: unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    return [TARGETS[w] for w in wanted]
