"""Checking the database URL setting (used by the profile loader and by ``models.engine``)."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url


def parse_database_url(url: str | URL) -> URL:
    """Parse ``url``, raising ``ValueError`` that names the setting when it is malformed."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # make_url raises ArgumentError with a terse message
        raise ValueError(f"TABLEBEAT_DATABASE_URL: cannot parse {str(url)!r}: {exc}") from exc
    if parsed.get_backend_name() not in ("sqlite", "mysql", "mariadb", "postgresql"):
        raise ValueError(
            f"TABLEBEAT_DATABASE_URL: unsupported backend {parsed.get_backend_name()!r}; "
            "use sqlite, mysql+pymysql or postgresql+psycopg"
        )
    return parsed
