"""Scheduler settings, read once from the Celery configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """Typed view of the ``tablebeat_*`` Celery settings the beat side uses."""

    database_url: str
    refresh_seconds: float = 10.0
    poll_seconds: float = 0.5
    misfire_grace_seconds: int = 60
    default_timezone: str = "UTC"
    #: Fires due within this many seconds are claimed ahead of their instant.
    lookahead_seconds: float = 2.0
    #: A claimed fire still unpublished after this long is republished by any beat.
    stale_claim_seconds: float = 10.0
    #: Running rows of a worker silent for this long become ``lost``.
    worker_dead_seconds: float = 30.0
    publish_batch_size: int = 1000
    #: A beat that has not stamped ``beat_node`` for this long is dead or frozen: others take over its claims.
    beat_dead_seconds: float = 1.5
    #: A run still pending this long after its publish is published once more (its message may be lost).
    pending_republish_seconds: float = 120.0
    #: A run still pending this long after its instant is closed ``expired`` (the run invariant's bound).
    pending_expire_seconds: float = 900.0
    #: Due rows claimed per transaction (each beat locks at most this many timeline rows at once).
    claim_batch: int = 2000

    def __post_init__(self) -> None:
        positive = (
            "refresh_seconds",
            "poll_seconds",
            "lookahead_seconds",
            "stale_claim_seconds",
            "beat_dead_seconds",
            "pending_republish_seconds",
            "pending_expire_seconds",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"tablebeat_{name}: must be positive, got {getattr(self, name)!r}")
        if self.misfire_grace_seconds < 0:
            raise ValueError(f"tablebeat_misfire_grace_seconds: must be >= 0, got {self.misfire_grace_seconds!r}")
        if self.claim_batch < 1:
            raise ValueError(f"tablebeat_claim_batch: must be >= 1, got {self.claim_batch!r}")
        try:
            ZoneInfo(self.default_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"TABLEBEAT_TIMEZONE: unknown IANA time zone {self.default_timezone!r}") from exc

    @classmethod
    def from_conf(cls, conf: Any) -> SchedulerSettings:
        """Build settings from ``app.conf``; missing keys take the defaults."""

        def get(key: str, default: Any) -> Any:
            value = conf.get(f"tablebeat_{key}")
            return default if value is None else value

        defaults = cls(database_url="")
        return cls(
            database_url=str(get("database_url", "")),
            refresh_seconds=float(get("refresh_seconds", defaults.refresh_seconds)),
            poll_seconds=float(get("poll_seconds", defaults.poll_seconds)),
            misfire_grace_seconds=int(get("misfire_grace_seconds", defaults.misfire_grace_seconds)),
            default_timezone=str(conf.get("timezone") or "UTC"),
            lookahead_seconds=float(get("lookahead_seconds", defaults.lookahead_seconds)),
            stale_claim_seconds=float(get("stale_claim_seconds", defaults.stale_claim_seconds)),
            worker_dead_seconds=float(get("worker_dead_seconds", defaults.worker_dead_seconds)),
            publish_batch_size=int(get("publish_batch_size", defaults.publish_batch_size)),
            beat_dead_seconds=float(get("beat_dead_seconds", defaults.beat_dead_seconds)),
            claim_batch=int(get("claim_batch", defaults.claim_batch)),
            pending_republish_seconds=float(get("pending_republish_seconds", defaults.pending_republish_seconds)),
            pending_expire_seconds=float(get("pending_expire_seconds", defaults.pending_expire_seconds)),
        )
