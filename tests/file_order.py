"""The order test files are handed to ``make test``'s processes: the longest first.

pytest-xdist's ``--dist loadfile`` gives each process a whole file at a time. Left to itself it
orders files by their number of tests, so a file of two long chaos tests came last and one
process ran it alone while the others were done. ``make test`` passes ``--no-loadscope-reorder``
and this order is applied at collection instead (longest-processing-time first).
"""

from __future__ import annotations

import pytest

#: Files taking 10 s or more, longest first: seconds per file summed from ``--durations`` of a
#: full ``make test`` on an idle 2-core machine (2026-11-30, 396 s wall). A file missing here
#: runs after these, in collection order; a stale entry only costs balance, never a test.
LONGEST_FIRST = (
    "tests/contract/test_contract.py",  # 101 s
    "tests/reliability/test_chaos_short.py",  # 63 s
    "tests/scheduler/test_sql_scheduler.py",  # 56 s
    "tests/runs/test_change_wins.py",  # 56 s
    "tests/reliability/test_outages.py",  # 53 s
    "tests/reliability/test_exactly_once.py",  # 51 s
    "tests/reliability/test_lost_runs.py",  # 47 s
    "tests/scheduler/test_row_validation.py",  # 40 s
    "tests/bench/test_bench_smoke.py",  # 36 s
    "tests/runs/test_run_invariant.py",  # 35 s
    "tests/cli/test_demo.py",  # 25 s
    "tests/console/test_console_e2e.py",  # 23 s
    "tests/observe/test_outage_metrics.py",  # 22 s
    "tests/integration/test_table_drives_beat.py",  # 20 s
    "tests/scheduler/test_sharing.py",  # 20 s
    "tests/scheduler/test_date_jobs.py",  # 19 s
    "tests/reliability/test_misfire.py",  # 19 s
    "tests/reliability/test_overlap.py",  # 16 s
    "tests/ops/test_alerts.py",  # 15 s
    "tests/bench/test_compare_smoke.py",  # 13 s
    "tests/legacy/test_status_and_run_page.py",  # 13 s
    "tests/api/test_exposure.py",  # 13 s
    "tests/legacy/test_compat_api.py",  # 12 s
    "tests/legacy/test_upgrade.py",  # 12 s
    "tests/api/test_edit_pickup.py",  # 11 s
)
_RANK = {path: rank for rank, path in enumerate(LONGEST_FIRST)}


def longest_first(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: the listed files first, by rank; the rest keep their order."""
    items.sort(key=lambda item: _RANK.get(item.nodeid.split("::", 1)[0], len(LONGEST_FIRST)))
