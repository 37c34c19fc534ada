"""How the console writes times, durations and schedules (Jinja filters and helpers)."""

from __future__ import annotations

from datetime import UTC, datetime

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def absolute(moment: datetime | None) -> str:
    """``2030-04-24 18:08:05 UTC``; an em dash for no time."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def span(seconds: float) -> str:
    """``3 s``, ``2 min 5 s``, ``1 d 4 h``: the two largest whole units."""
    whole = int(abs(seconds))
    if whole == 0:
        return "0 s"
    parts = []
    for unit, size in _UNITS:
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count} {unit}")
        if len(parts) == 2:
            break
    return " ".join(parts)


def relative(moment: datetime | None, now: datetime) -> str:
    """``in 5 s`` or ``3 min ago``, measured from ``now``."""
    if moment is None:
        return "—"
    delta = (moment - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {span(delta)}" if delta > 0 else f"{span(delta)} ago"


def duration(seconds: float | None) -> str:
    """A run's length: ``12 ms``, ``1.25 s``, ``3 min 4 s``."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    return span(seconds)


def lateness(scheduled: datetime | None, started: datetime | None) -> str:
    """How long after its fire instant a run started: ``+0.12 s``."""
    if scheduled is None or started is None:
        return "—"
    seconds = (started - scheduled).total_seconds()
    sign = "+" if seconds >= 0 else "−"
    return f"{sign}{duration(abs(seconds))}"


def in_flight(status: str) -> str:
    """What a run newer than the last finished one is doing: ``a newer run is queued``."""
    doing = {"pending": "queued", "running": "running", "retrying": "waiting to retry"}.get(status, status)
    return f"a newer run is {doing}"
