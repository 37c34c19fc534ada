"""Beat-side state shared by every beat: who is alive, and how far the change log is settled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped

from models.base import Base
from models.tables import beat_node_table, schedule_cursor_table


class BeatNode(Base):
    """One running beat process; ``seen_at`` is stamped every fraction of a second while it lives.

    A beat silent for ``TABLEBEAT_BEAT_DEAD_SECONDS`` is dead (or frozen): any other beat takes
    over the fires it claimed and has not published.
    """

    __table__ = beat_node_table

    token: Mapped[str]
    seen_at: Mapped[datetime]
    started_at: Mapped[datetime]

    def __repr__(self) -> str:
        return f"BeatNode(token={self.token!r}, seen_at={self.seen_at!r})"


class ScheduleCursor(Base):
    """How far the change log has been applied to ``task.next_run_at`` (one row, ``name='settled'``).

    Every change-log id at or below ``change_id`` has been applied: the rows it named carry
    the ``next_run_at``/``status`` their configuration implies.  NULL means never settled:
    the next beat to start settles every row once.
    """

    __table__ = schedule_cursor_table

    name: Mapped[str]
    change_id: Mapped[int | None]

    def __repr__(self) -> str:
        return f"ScheduleCursor(name={self.name!r}, change_id={self.change_id!r})"
