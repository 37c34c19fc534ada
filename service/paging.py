"""Paging bounds of every list: what each database accepts as LIMIT and OFFSET.

An offset beyond them is a 422 naming the parameter, not a database error (MariaDB
answers ``OFFSET 99999999999999999999`` with a syntax error, PostgreSQL with an
out-of-range bigint).
"""

from __future__ import annotations

from service.errors import ValidationFailed

#: Most rows one page returns.
MAX_PAGE = 1000
#: Largest OFFSET every supported database takes: PostgreSQL's and SQLite's signed 64-bit
#: integer (MySQL/MariaDB would take up to 2**64 - 1).
MAX_OFFSET = 2**63 - 1


def check_page(limit: int, offset: int) -> None:
    """Refuse a ``limit``/``offset`` pair the database cannot take. :raises ValidationFailed:"""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed("limit", f"must be between 1 and {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise ValidationFailed("offset", f"must not be negative, got {offset}")
    if offset > MAX_OFFSET:
        raise ValidationFailed("offset", f"must be at most {MAX_OFFSET}, got {offset}")


def check_page_number(name: str, page: int, per_page: int) -> None:
    """Refuse a 1-based page number whose OFFSET the database cannot take (the console reads
    pages below 1 as the first). :raises ValidationFailed: naming ``name``"""
    last = MAX_OFFSET // per_page + 1
    if page > last:
        raise ValidationFailed(name, f"must be at most {last}, got {page}")
