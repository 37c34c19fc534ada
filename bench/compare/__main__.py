"""``python -m bench compare [--rows 10000,100000] [--peers ...]``: tablebeat vs its peers, one beat at a time."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from bench.compare.peers import DEFAULT_PEERS, PEERS
from bench.compare.run import compare, render
from bench.env import DEFAULT_REDIS_URL, BenchEnv
from bench.runner import RESULTS_DIR, install_signal_cleanup, machine, source_state

DEFAULT_DB_URL = "mysql+pymysql://root@127.0.0.1:3306/tablebeat_compare?charset=utf8mb4"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench compare",
        description="tablebeat, django-celery-beat, celery-redbeat and sqlalchemy-celery-beat on the same N "
        "(install the peers with pip install '.[bench]'): start, peak RSS, idle CPU, edit pickup, 1,000-fire burst.",
    )
    p.add_argument("--rows", default="10000", help="task counts, comma-separated (default 10000)")
    p.add_argument(
        "--peers",
        default=",".join(DEFAULT_PEERS),
        help=f"which, comma-separated (default {','.join(DEFAULT_PEERS)}; also: tablebeat-poll-5s)",
    )
    p.add_argument("--idle-seconds", type=float, default=30.0, help="idle CPU window (default 30)")
    p.add_argument("--edits", type=int, default=5, help="edits timed per scheduler (default 5)")
    p.add_argument(
        "--start-budget", type=float, help="seconds a beat may take to start (default: 20 + a per-peer rate x N)"
    )
    p.add_argument("--db-url", default=DEFAULT_DB_URL, help="MariaDB database (dropped and recreated!)")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="broker and RedBeat store (its DB is flushed!)")
    p.add_argument("--log-dir", type=Path, help="beat logs (default: a temp folder)")
    p.add_argument("--json", type=Path, help=f"results file (default {RESULTS_DIR}/compare-<time>.json)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise SystemExit(f"--peers: unknown {', '.join(unknown)}; known: {', '.join(PEERS)}")
    console = Console(width=None if sys.stdout.isatty() else 200)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="tablebeat-compare-"))
    bench = BenchEnv(db_url=args.db_url, redis_url=args.redis_url, log_dir=log_dir)
    install_signal_cleanup(bench)
    console.print(f"beat logs in {log_dir}")
    doc: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "source": source_state(),
        "results": {},
    }
    try:
        for rows in [int(r) for r in args.rows.split(",") if r.strip()]:
            results = compare(
                bench,
                rows,
                peers,
                idle_s=args.idle_seconds,
                edits=args.edits,
                log=console.print,
                start_budget_s=args.start_budget,
            )
            doc["results"][str(rows)] = results  # type: ignore[index]
            render(results, console)
    finally:
        bench.drop_database()
        bench.close()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = args.json or RESULTS_DIR / f"compare-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    console.print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
