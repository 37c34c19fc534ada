"""models/pymysql_conversions.py: the same text and values as PyMySQL's own datetime conversions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymysql import converters
from sqlalchemy import text

from models import make_engine
from models.pymysql_conversions import convert_datetime, escape_datetime
from tests.conftest import fresh_database

naive = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999))


@given(naive)
def test_escape_is_pymysqls_text(value: datetime) -> None:
    assert escape_datetime(value) == converters.escape_datetime(value)


@given(naive, st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
def test_an_aware_value_is_escaped_as_pymysql_does(value: datetime, zone: timezone) -> None:
    aware = value.replace(tzinfo=zone)
    assert escape_datetime(aware) == converters.escape_datetime(aware)


@given(naive, st.integers(min_value=0, max_value=6))
def test_decode_is_pymysqls_value(value: datetime, digits: int) -> None:
    # MariaDB sends DATETIME(n) with exactly n fraction digits (none for n = 0).
    whole = value.strftime("%Y-%m-%d %H:%M:%S")
    fraction = f"{value.microsecond:06d}"[:digits]
    wire = whole + ("." + fraction if digits else "")
    assert convert_datetime(wire) == converters.convert_datetime(wire)
    assert convert_datetime(wire.encode()) == converters.convert_datetime(wire.encode())


@pytest.mark.parametrize(
    "wire", ["0000-00-00 00:00:00", "2026-02-30 00:00:00", "2026-11-30 17:04:27.1234567", "2026-11-30", "garbage"]
)
def test_what_fromisoformat_would_read_differently_is_left_to_pymysql(wire: str) -> None:
    assert convert_datetime(wire) == converters.convert_datetime(wire)


@pytest.fixture
def mariadb() -> Iterator[str]:
    with fresh_database("mariadb") as url:
        yield url


@pytest.mark.mariadb
def test_the_engine_round_trips_datetimes_through_the_server(mariadb: str) -> None:
    engine = make_engine(mariadb)
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE t (a DATETIME(6), b DATETIME, c TIMESTAMP(3) NULL)"))
            values = [datetime(2026, 11, 30, 1, 2, 3), datetime(2026, 11, 30, 1, 2, 3, 450001)]
            for value in values:
                conn.execute(text("INSERT INTO t VALUES (:v, :v, :v)"), {"v": value})
            rows = conn.execute(text("SELECT a, b, c FROM t ORDER BY a")).all()
            zero = conn.execute(text("SELECT CAST('0000-00-00' AS DATETIME)")).scalar()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [
        (values[0], values[0], values[0]),
        (values[1], values[1].replace(microsecond=0), values[1].replace(microsecond=450000)),
    ]
    assert zero == "0000-00-00 00:00:00"  # PyMySQL's answer for a zero date, unchanged
