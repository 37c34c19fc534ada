"""Running the selected targets, printing measured vs target, writing JSON results."""

from __future__ import annotations

import importlib
import json
import os
import platform
import signal
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.context import CaseContext
from bench.env import BenchEnv
from bench.targets import TARGETS, Target

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Run order: the 100,000-row idle seed is shared by T1, T2, T7 and T3 (which edits rows: last).
RUN_ORDER = ("T1", "T2", "T7", "T3", "T4", "T5", "T6", "T8")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def source_state() -> dict[str, Any]:
    """The commit measured, and which files under test differ from it (others may be editing them)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=RESULTS_DIR.parent.parent, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = git("status", "--porcelain", "--", "scheduler", "workers", "models", "celeryconfig.py")
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted": dirty.splitlines()}


def run_bench(
    env: BenchEnv,
    targets: list[Target],
    *,
    rows: int | None = None,
    seconds: float | None = None,
    reps: int | None = None,
    t4_period: int = 60,
    worker_loglevel: str = "info",
    beats: int = 1,
    close_runs: bool = False,
    log: Callable[[str], None] = print,
    recreate: bool = True,
) -> dict[str, Any]:
    """Run ``targets`` against ``env``; returns the results document (also what the JSON holds).

    ``seconds``: the measurement window of every selected target; None: each target's own.
    """
    if recreate:
        log(f"recreating database {env.db_url.split('/')[-1].split('?')[0]} and schema")
        env.recreate_database()
    env.flush_broker()
    state: dict[str, Any] = {}
    results: dict[str, Any] = {}
    wanted = {t.id for t in targets}
    for target_id in [t for t in RUN_ORDER if t in wanted]:
        target = TARGETS[target_id]
        size = rows or target.default_rows
        ctx = CaseContext(
            env=env,
            rows=size,
            seconds=target.default_seconds if seconds is None else seconds,
            reps=reps,
            t4_period=t4_period,
            worker_loglevel=worker_loglevel,
            beats=beats,
            close_runs=close_runs,
            log=log,
            state=state,
        )
        log(f"{target.id}: {target.title} (rows={size:,})")
        started = time.perf_counter()
        entry: dict[str, Any] = {"title": target.title, "rows": size}
        try:
            module = importlib.import_module(target.module)
            metrics = module.run(ctx)
            entry["metrics"] = metrics
            entry["checks"] = [c.evaluate(metrics, size) for c in target.checks]
        except Exception as exc:  # one broken case must not lose the others' numbers
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc()
            entry["checks"] = [c.evaluate({}, size) for c in target.checks]
            log(f"  {target.id} FAILED: {entry['error']}")
            state.pop("seeded", None)
        finally:
            env.stop_all()
            env.flush_broker()
        entry["case_s"] = round(time.perf_counter() - started, 1)
        results[target.id] = entry
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "source": source_state(),
        "settings": {
            "rows": rows,
            "seconds": seconds,
            "reps": reps,
            "t4_period": t4_period,
            "worker_loglevel": worker_loglevel,
            "beats": beats,
            "close_runs": close_runs,
            "db": env.db_url.rsplit("@", 1)[-1],
            "broker": env.redis_url,
        },
        "results": {k: results[k] for k in sorted(results)},
    }


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text} {unit}".strip()


def render(doc: dict[str, Any], console: Console | None = None) -> Table:
    m = doc["machine"]
    table = Table(title=f"tablebeat benchmark — {doc['date']} — {m['cores']} cores, {m['cpu']}", show_lines=False)
    for col, justify in (
        ("#", "left"),
        ("what", "left"),
        ("rows", "right"),
        ("measured", "right"),
        ("target", "right"),
        ("ratio", "right"),
        ("result", "center"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for target_id, entry in doc["results"].items():
        for i, check in enumerate(entry["checks"]):
            ok = check["pass"]
            result = "[green]pass[/]" if ok else ("[red]MISS[/]" if ok is False else "[yellow]n/a[/]")
            if entry.get("error") and i == 0:
                result = "[red]ERROR[/]"
            ratio = check["ratio"]
            table.add_row(
                target_id if i == 0 else "",
                check["label"],
                _fmt(entry["rows"]) if i == 0 else "",
                _fmt(check["measured"], check["unit"]),
                f"{check['op']} {_fmt(check['target'], check['unit'])}",
                "—" if ratio is None else f"{ratio:.2f}",
                result,
            )
        table.add_section()
    if console is not None:
        console.print(table)
        for target_id, entry in doc["results"].items():
            if entry.get("error"):
                console.print(f"[red]{target_id} error:[/] {entry['error']}")
    return table


def write_json(doc: dict[str, Any], path: Path | None = None) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = path or RESULTS_DIR / f"bench-{stamp}.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    (RESULTS_DIR / "latest.json").write_text(json.dumps(doc, indent=2, default=str))
    return path


def install_signal_cleanup(env: BenchEnv) -> None:
    """SIGTERM/SIGHUP stop every process the bench started before exiting."""

    def handler(signum: int, _frame: Any) -> None:
        env.close()
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
