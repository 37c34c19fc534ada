"""models/pymysql_tls.py: preferred TLS as PyMySQL sets it up, without loading the system CA store."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pymysql
import pytest
from sqlalchemy import text

from models import make_engine
from models.pymysql_tls import connection_class, preferred_tls_context
from tests.conftest import fresh_database


def _pymysqls_own(sslp: dict[str, object]) -> ssl.SSLContext:
    conn = pymysql.connections.Connection.__new__(pymysql.connections.Connection)
    return conn._create_ssl_ctx(sslp)  # type: ignore[no-any-return]


def test_preferred_context_has_pymysqls_settings_without_the_ca_store() -> None:
    ours = connection_class().__new__(connection_class())._create_ssl_ctx({})
    theirs = _pymysqls_own({})
    assert ours is preferred_tls_context()
    assert (ours.verify_mode, ours.check_hostname, ours.protocol) == (
        theirs.verify_mode,
        theirs.check_hostname,
        theirs.protocol,
    )
    assert ours.verify_mode == ssl.CERT_NONE
    assert ours.options & (ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3) == theirs.options & (ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3)
    assert ours.minimum_version == theirs.minimum_version
    assert ours.cert_store_stats()["x509_ca"] == 0


@pytest.mark.parametrize(
    "sslp",
    [
        {"ca": None, "check_hostname": False, "verify_mode": True},  # ssl_verify_cert=True: needs the store
        {"ca": None, "check_hostname": False, "verify_mode": False},
    ],
)
def test_any_tls_option_gets_pymysqls_own_context(sslp: dict[str, object]) -> None:
    ours = connection_class().__new__(connection_class())._create_ssl_ctx(dict(sslp))
    theirs = _pymysqls_own(dict(sslp))
    assert ours is not preferred_tls_context()
    assert (ours.verify_mode, ours.check_hostname) == (theirs.verify_mode, theirs.check_hostname)
    assert ours.cert_store_stats() == theirs.cert_store_stats()


@pytest.fixture
def mariadb() -> Iterator[str]:
    with fresh_database("mariadb") as url:
        yield url


@pytest.mark.mariadb
def test_the_engine_connects_through_it(mariadb: str) -> None:
    engine = make_engine(mariadb)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            dbapi = conn.connection.dbapi_connection
            assert isinstance(dbapi, connection_class())
            assert dbapi.ctx is preferred_tls_context()
            assert conn.execute(text("SELECT @@time_zone")).scalar() == "+00:00"  # connect_args still applied
    finally:
        engine.dispose()
