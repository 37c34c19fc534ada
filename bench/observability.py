"""``python -m bench.observability``: what metrics + OpenTelemetry cost, on T5 (beat) and T6 (worker).

Each round runs T5 and T6 twice, once with observability off (the default) and once with
``TABLEBEAT_METRICS_PORT`` set (and scraped every ``--scrape-every`` seconds, as Prometheus
would) and ``TABLEBEAT_OTEL=on`` exporting every span over OTLP/HTTP to a local sink that
answers 200 (so span export is paid in full). Rounds interleave off and on (off, on, on, off,
off, on, ...: a load drift weighs on both alike). The table shows the medians, the overhead
(on - off) / off of the medians, and the range of each round's own on/off overhead; CPU per
fire (beat) and per run (worker) is the figure that does not move with machine load. The load
average is recorded before each run. The last beat scrape taken during T5 is printed as an excerpt.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.env import BenchEnv
from bench.runner import RESULTS_DIR, install_signal_cleanup, run_bench
from bench.targets import select

#: Its own database, so it never drops the one ``python -m bench`` (or another helper) uses.
DB_URL = "mysql+pymysql://root@127.0.0.1:3306/tablebeat_bench_obs?charset=utf8mb4"
#: (case, metric, lower is better) compared between off and on.
COMPARED = (
    ("T5", "beat_cpu_ms_per_fire", True),
    ("T5", "beat_cpu_util", True),
    ("T5", "p50_lateness_s", True),
    ("T5", "p99_lateness_s", True),
    ("T5", "fires_per_s", False),
    ("T6", "noop_s", True),
    ("T6", "noop_runs_per_s", False),
    ("T6", "noop_worker_cpu_ms_per_run", True),
    ("T6", "noop_drain_cpu_s", True),
    ("T6", "noop_worker_cpu_s", True),
    ("T6", "ratio", True),
)
EXCERPT_PREFIXES = (
    "tablebeat_beat_fires_claimed_total",
    "tablebeat_beat_fires_published_total",
    "tablebeat_beat_fires_skipped_total",
    "tablebeat_beat_claim_rejections_total",
    "tablebeat_beat_publish_lateness_seconds_bucket",
    "tablebeat_beat_publish_lateness_seconds_count",
    "tablebeat_beat_publish_lateness_seconds_sum",
    "tablebeat_beat_sync_duration_seconds_count",
    "tablebeat_beat_scheduled_tasks",
    "tablebeat_dependency_up",
)


class OtlpSink:
    """A local OTLP/HTTP endpoint that accepts every export (counts requests and bytes)."""

    def __init__(self) -> None:
        sink = self
        self.requests = 0
        self.bytes = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                sink.requests += 1
                sink.bytes += length
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class Scraper(threading.Thread):
    """Scrapes ``url`` every ``every`` seconds; keeps the last page that had beat's fire counters."""

    def __init__(self, url: str, every: float) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.scrapes = 0
        self.last_beat_page = ""
        self.last_worker_page = ""
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                text = httpx.get(self.url, timeout=2).text
            except httpx.HTTPError:
                continue
            self.scrapes += 1
            if "tablebeat_beat_fires_published_total{" in text:
                self.last_beat_page = text
            if "tablebeat_worker_runs_finished_total{" in text:
                self.last_worker_page = text

    def stop(self) -> None:
        self._stop_event.set()


def excerpt(page: str) -> list[str]:
    return [line for line in page.splitlines() if line.startswith(EXCERPT_PREFIXES) and not line.startswith("#")]


def one_run(args: argparse.Namespace, on: bool, log_dir: Path, console: Console) -> dict[str, Any]:
    extra: dict[str, str] = {}
    sink = scraper = None
    if on:
        sink = OtlpSink()
        extra = {"TABLEBEAT_METRICS_PORT": str(args.metrics_port)}
        if args.on != "metrics":
            extra |= {
                "TABLEBEAT_OTEL": "on",
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
                # Above one tick's fires: the SDK's default queue (2,048) drops the rest of a 2,000+ burst.
                "OTEL_BSP_MAX_QUEUE_SIZE": "16384",
            }
        if args.on == "sampled":
            extra |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(args.sample)}
        scraper = Scraper(f"http://127.0.0.1:{args.metrics_port}/metrics", args.scrape_every)
        scraper.start()
    env = BenchEnv(db_url=args.db_url, redis_url=args.redis_url, log_dir=log_dir, extra_env=extra)
    install_signal_cleanup(env)
    load = os.getloadavg()[0]
    try:
        doc = run_bench(env, select(["T5"]), rows=args.rows, seconds=args.seconds, log=console.print)
        t6 = run_bench(env, select(["T6"]), rows=args.t6_runs or args.rows, log=console.print)
        doc["results"].update(t6["results"])
    finally:
        env.close()
        if scraper is not None:
            scraper.stop()
        if sink is not None:
            sink.close()
    found: dict[str, Any] = {
        "on": on,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "results": {k: v.get("metrics", {}) for k, v in doc["results"].items()},
    }
    t5, t6 = found["results"].get("T5", {}), found["results"].get("T6", {})
    if t5.get("fires_per_s"):
        t5["beat_cpu_ms_per_fire"] = t5["beat_cpu_util"] / t5["fires_per_s"] * 1000
    if t6.get("runs"):
        t6["noop_worker_cpu_ms_per_run"] = t6["noop_drain_cpu_s"] / t6["runs"] * 1000
    errors = {k: v["error"] for k, v in doc["results"].items() if v.get("error")}
    if errors:
        raise RuntimeError(f"bench failed: {errors}")
    if scraper is not None and sink is not None:
        found.update(
            scrapes=scraper.scrapes,
            otlp_requests=sink.requests,
            otlp_bytes=sink.bytes,
            beat_excerpt=excerpt(scraper.last_beat_page),
            worker_excerpt=[ln for ln in scraper.last_worker_page.splitlines() if ln.startswith("tablebeat_worker_")],
        )
    return found


@contextmanager
def _broker(given: str | None) -> Iterator[str]:
    """``given``, or a Redis DB number nobody uses now, locked the way the tests lock theirs."""
    if given:
        yield given
        return
    from tests.processes import redis_broker_db

    with redis_broker_db() as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    p.add_argument("--rounds", type=int, default=2, help="off/on pairs (default 2)")
    p.add_argument("--rows", type=int, help="T5 rows and T6 runs (default: the targets', 2,000 and 20,000)")
    p.add_argument("--seconds", type=float, default=30.0, help="T5 window (default 30)")
    p.add_argument("--t6-runs", type=int, help="T6 runs (default: --rows, else the target's 20,000)")
    p.add_argument(
        "--on",
        choices=("all", "metrics", "sampled"),
        default="all",
        help="what 'on' turns on: metrics + every span traced (default), metrics alone, or metrics + "
        "traces sampled at --sample (parentbased_traceidratio)",
    )
    p.add_argument("--sample", type=float, default=0.01, help="trace ratio of --on sampled (default 0.01)")
    p.add_argument("--metrics-port", type=int, default=19808)
    p.add_argument("--scrape-every", type=float, default=5.0, help="seconds between scrapes (default 5)")
    p.add_argument("--db-url", default=DB_URL, help="bench database (dropped and recreated!)")
    p.add_argument("--redis-url", help="broker (its Redis DB is flushed!; default: a free DB number, locked)")
    p.add_argument("--json", type=Path, help=f"results file (default {RESULTS_DIR}/observability-<time>.json)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    console = Console(width=None if sys.stdout.isatty() else 150)
    log_dir = Path(tempfile.mkdtemp(prefix="tablebeat-bench-obs-"))
    console.print(f"process logs in {log_dir}")
    runs = []
    with _broker(args.redis_url) as args.redis_url:
        for round_no in range(args.rounds):
            for on in (False, True) if round_no % 2 == 0 else (True, False):
                console.print(f"[bold]round {round_no + 1}: observability {'on' if on else 'off'}[/bold]")
                runs.append(one_run(args, on, log_dir, console))
    title = {"all": "metrics + OpenTelemetry", "metrics": "metrics alone", "sampled": "metrics + sampled traces"}
    table = Table(title=f"{title[args.on]}: on vs off (median of rounds; range over rounds)")
    for column in ("case", "metric", "off", "on", "overhead", "per round"):
        table.add_column(column, justify="left" if column in ("case", "metric") else "right")
    summary = []
    for case, metric, lower_better in COMPARED:
        offs = [r["results"][case][metric] for r in runs if not r["on"]]
        ons = [r["results"][case][metric] for r in runs if r["on"]]
        off, on = statistics.median(offs), statistics.median(ons)
        sign = 1 if lower_better else -1
        overhead = sign * (on - off) / off if off else 0.0
        # Each round's off and on ran back to back: their ratio is the least load-dependent.
        rounds = [sign * (b - a) / a for a, b in zip(offs, ons, strict=False) if a]
        summary.append(
            {"case": case, "metric": metric, "off": offs, "on": ons, "overhead": overhead, "per_round": rounds}
        )
        spread = f"{min(rounds):+.1%} .. {max(rounds):+.1%}" if rounds else "-"
        table.add_row(
            case,
            metric,
            f"{off:,.4g} ({min(offs):,.3g}-{max(offs):,.3g})",
            f"{on:,.4g} ({min(ons):,.3g}-{max(ons):,.3g})",
            f"{overhead:+.1%}",
            spread,
        )
    console.print(table)
    loads = ", ".join(f"{'on' if r['on'] else 'off'} {r['load_before']:.1f}" for r in runs)
    console.print(f"load average (1 min) before each run: {loads}")
    last_on = next(r for r in reversed(runs) if r["on"])
    exports = f"{last_on['otlp_requests']} ({last_on['otlp_bytes']:,} B)"
    console.print(f"scrapes: {last_on['scrapes']}, OTLP exports: {exports}")
    console.print("beat /metrics during T5 (excerpt):")
    for line in last_on["beat_excerpt"]:
        console.print(f"  {line}", soft_wrap=True, highlight=False)
    path = args.json or RESULTS_DIR / f"observability-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"on": args.on, "summary": summary, "runs": runs}, indent=2, default=str))
    console.print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
