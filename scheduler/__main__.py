"""``python -m scheduler [-A workers] [-l info]``: Celery beat with tablebeat's scheduler, started lean.

The same ``celery.apps.beat.Beat`` loop, logging and job-module loading as ``celery -A workers
beat``, without the ``celery`` command line: that one loads every installed Celery CLI plugin
(Flower and Tornado among them) into the beat process, about 30 MB it never uses.  Its banner
names the broker from the setting instead of a kombu ``Connection``, which imports the broker
transport (redis-py: a few hundred ms) before the first tick; beat loads it once ticking.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from celery.app.utils import find_app
from celery.apps.beat import STARTUP_INFO_FMT
from celery.utils.imports import qualname
from celery.utils.log import LOG_LEVELS
from celery.utils.time import humanize_seconds
from kombu.utils.url import maybe_sanitize_url


def lean_beat(app: Any) -> Any:
    """``app.Beat`` whose banner does not import the broker transport."""

    class LeanBeat(app.Beat):  # type: ignore[misc]
        def startup_info(self, service: Any) -> str:
            # Celery's own, except the broker line: app.connection().as_uri() resolves the transport.
            scheduler = service.get_scheduler(lazy=True)
            return str(
                STARTUP_INFO_FMT.format(
                    conninfo=maybe_sanitize_url(self.app.conf.broker_url or "amqp://guest:**@localhost:5672//"),
                    timestamp=datetime.now().replace(microsecond=0),
                    logfile=self.logfile or "[stderr]",
                    loglevel=LOG_LEVELS[self.loglevel],
                    loader=qualname(self.app.loader),
                    scheduler=qualname(scheduler),
                    scheduler_info=scheduler.info,
                    hmax_interval=humanize_seconds(scheduler.max_interval),
                    max_interval=scheduler.max_interval,
                    remote_control_info=self._remote_control_info(service),
                )
            )

    return LeanBeat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("-A", "--app", default="workers", help="the Celery app (default: workers)")
    parser.add_argument("-l", "--loglevel", default="info", help="log level (default: info)")
    parser.add_argument("-f", "--logfile", default=None, help="log file (default: stderr)")
    parser.add_argument("--max-interval", type=float, default=None, help="longest sleep between ticks")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    app = find_app(args.app)
    beat = lean_beat(app)(
        loglevel=args.loglevel,
        logfile=args.logfile,
        scheduler=app.conf.beat_scheduler or "scheduler.beat:SqlScheduler",
        max_interval=args.max_interval,
    )
    beat.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
