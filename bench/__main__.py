"""``python -m bench all`` / ``python -m bench --only T4 --rows 10000``: run T1-T8, print and save results."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from bench.env import DEFAULT_DB_URL, DEFAULT_REDIS_URL, BenchEnv
from bench.runner import RESULTS_DIR, install_signal_cleanup, render, run_bench, write_json
from bench.targets import TARGETS, select


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="tablebeat benchmarks T1-T8 (issues 6 and 14), measured from outside the processes.",
        epilog="Targets: " + "; ".join(f"{t.id} {t.title}" for t in TARGETS.values()),
    )
    p.add_argument(
        "what", nargs="?", default="all", help="'all' (default), a target id such as T4, or 'compare' (peers)"
    )
    p.add_argument("--only", action="append", help="target ids to run, e.g. --only T4 or --only T1,T2")
    p.add_argument("--rows", type=int, help="rows (runs for T6) for every selected target (default: each target's)")
    p.add_argument(
        "--seconds", type=float, help="measurement window of T2, T5 (default 60) and T8 (default 30, each run)"
    )
    p.add_argument("--reps", type=int, help="repetitions of T3 edits (15) and T7 probes (200)")
    p.add_argument(
        "--t4-period",
        type=int,
        default=60,
        choices=(10, 15, 20, 30, 60),
        help="T4 cron period: 60 = '* * * * *' (the target), less = seconds cron, sooner boundary",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes for a check of the harness: rows=200, seconds=3, reps=5, t4 period 10",
    )
    p.add_argument("--worker-loglevel", default="info", help="T6 worker log level, same for both runs (info)")
    p.add_argument("--beats", type=int, default=1, help="T5: beats sharing the fires on the same database (1)")
    p.add_argument(
        "--close-runs",
        action="store_true",
        help="T5: a stand-in for workers marks published runs 'success' twice a second (no pending backlog)",
    )
    p.add_argument(
        "--beat-launcher",
        choices=("lean", "celery"),
        default="lean",
        help="lean: python -m scheduler (default); celery: celery -A workers beat (loads every celery CLI plugin)",
    )
    p.add_argument("--db-url", default=DEFAULT_DB_URL, help="bench database (dropped and recreated!)")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="broker (its Redis DB is flushed!)")
    p.add_argument("--log-dir", type=Path, help="celery process logs (default: a temp folder)")
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample every beat/worker with py-spy into DIR (summarise: python -m bench.profile DIR/*.txt)",
    )
    p.add_argument(
        "--profile-idle",
        action="store_true",
        help="with --profile: sample waiting threads too (wall time, e.g. time blocked on MariaDB)",
    )
    p.add_argument("--json", type=Path, help=f"results file (default {RESULTS_DIR}/bench-<time>.json)")
    args = p.parse_args(argv)
    if args.beats < 1:
        p.error(f"--beats: must be at least 1, got {args.beats}")
    if args.quick:
        args.rows = args.rows or 200
        args.seconds = args.seconds or 3.0
        args.reps = args.reps or 5
        args.t4_period = 10 if args.t4_period == 60 else args.t4_period
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        from bench.compare.__main__ import main as compare_main

        return compare_main(argv[1:])
    args = parse(argv)
    only = args.only or ([] if args.what.lower() == "all" else [args.what])
    targets = select(only)
    console = Console(width=None if sys.stdout.isatty() else 150)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="tablebeat-bench-"))
    env = BenchEnv(
        db_url=args.db_url,
        redis_url=args.redis_url,
        log_dir=log_dir,
        profile_dir=args.profile,
        profile_idle=args.profile_idle,
        beat_launcher=args.beat_launcher,
    )
    install_signal_cleanup(env)
    console.print(f"process logs in {log_dir}")
    try:
        doc = run_bench(
            env,
            targets,
            rows=args.rows,
            seconds=args.seconds,
            reps=args.reps,
            t4_period=args.t4_period,
            worker_loglevel=args.worker_loglevel,
            beats=args.beats,
            close_runs=args.close_runs,
            log=console.print,
        )
    finally:
        env.close()
    doc["settings"]["log_dir"] = str(log_dir)
    render(doc, console)
    path = write_json(doc, args.json)
    console.print(f"results written to {path}")
    return 1 if any(e.get("error") for e in doc["results"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
