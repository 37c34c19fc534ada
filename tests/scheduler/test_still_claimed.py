"""After a stall, beat publishes only the claims still its own: ``store.still_claimed`` on every database.

Dense run ids are read as one primary-key range, sparse ones by ``IN`` lists; both must give the
same answer: the runs still claimed by this beat and not yet published.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from scheduler import store
from tests.scheduler.test_sql_scheduler import add_task, engine

__all__ = ["engine"]

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _claim(engine: Engine, task_id: int, count: int, token: str, start: int = 0) -> list[int]:
    """Claim ``count`` fires of ``task_id`` (one a second from ``T0 + start`` s) as ``token``; their run ids."""
    claims = [
        store.FireClaim(
            task_id, T0 + timedelta(seconds=start + i), trace_id=f"{task_id:04x}{start + i:028x}", celery_id=f"c{i}"
        )
        for i in range(count)
    ]
    with engine.begin() as conn:
        won = store.claim_fires(conn, claims, token, T0)
    return sorted(won.values())


@pytest.mark.parametrize("rows", [10, 12_000], ids=["few", "several blocks"])
def test_dense_ids_taken_over_or_published_are_dropped(engine: Engine, rows: int) -> None:
    task_id = add_task(engine, "dense", "test_interval", "interval", "1")
    ids = _claim(engine, task_id, rows, "me")
    taken, published = ids[3], ids[-2]
    with engine.begin() as conn:
        conn.execute(text("UPDATE execute_task SET claimed_by = 'other' WHERE id = :i"), {"i": taken})
        conn.execute(text("UPDATE execute_task SET published_at = create_at WHERE id = :i"), {"i": published})
        held = store.still_claimed(conn, ids, "me")
    assert held == set(ids) - {taken, published}


def test_sparse_ids_and_runs_of_others_in_the_range(engine: Engine) -> None:
    mine = add_task(engine, "mine", "test_interval", "interval", "1")
    theirs = add_task(engine, "theirs", "test_interval", "interval", "1")
    first = _claim(engine, mine, 3, "me")
    between = _claim(engine, theirs, 50, "other")  # ids between ours, never asked about
    last = _claim(engine, mine, 3, "me", start=3600)
    asked = [*first, *last]
    assert max(asked) - min(asked) + 1 > 2 * len(asked), "the ids are meant to be sparse"
    with engine.begin() as conn:
        assert store.still_claimed(conn, asked, "me") == set(asked)
        assert store.still_claimed(conn, [*first, between[0]], "me") == set(first)
        assert store.still_claimed(conn, asked, "someone else") == set()
