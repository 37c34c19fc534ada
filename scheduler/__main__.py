"""``python -m scheduler [-A workers] [-l info]``: Celery beat with tablebeat's scheduler, started lean.

The same ``celery.apps.beat.Beat`` loop, logging and job-module loading as ``celery -A workers
beat``, without the ``celery`` command line: that one loads every installed Celery CLI plugin
(Flower and Tornado among them) into the beat process, about 30 MB it never uses.
"""

from __future__ import annotations

import argparse
import sys

from celery.app.utils import find_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("-A", "--app", default="workers", help="the Celery app (default: workers)")
    parser.add_argument("-l", "--loglevel", default="info", help="log level (default: info)")
    parser.add_argument("-f", "--logfile", default=None, help="log file (default: stderr)")
    parser.add_argument("--max-interval", type=float, default=None, help="longest sleep between ticks")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    app = find_app(args.app)
    beat = app.Beat(
        loglevel=args.loglevel,
        logfile=args.logfile,
        scheduler=app.conf.beat_scheduler or "scheduler.beat:SqlScheduler",
        max_interval=args.max_interval,
    )
    beat.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
