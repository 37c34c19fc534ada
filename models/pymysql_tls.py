"""PyMySQL's preferred TLS without loading the system CA store, which that mode never consults.

Given no TLS option, PyMySQL (1.1+) tries TLS if the server offers it and goes on in clear text if
not ("preferred").  For that it builds an ``ssl.create_default_context()`` on every connection,
which loads every certificate of the system store (~16 ms of CPU and ~1.7 MiB resident each, per
connection, whether the server offers TLS or not), and then sets ``CERT_NONE`` without a hostname
check, so the store is never read.  Connections made here get the same context minus the store:
one shared ``PROTOCOL_TLS_CLIENT`` context with the same settings.  Any TLS option given (a CA,
``ssl_verify_cert``, a client certificate) goes to PyMySQL's own context untouched.
"""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any


@cache
def preferred_tls_context() -> ssl.SSLContext:
    """The context PyMySQL builds for preferred TLS (no CA given), without loading CA certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.options |= ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3
    return ctx


@cache
def connection_class() -> type[Any]:
    """``pymysql.Connection`` with :func:`preferred_tls_context` for connections given no TLS option."""
    import pymysql.connections  # type: ignore[import-untyped]  # imported by the engine first (pymysql_import)

    class Connection(pymysql.connections.Connection):  # type: ignore[misc]  # untyped (no stubs)
        def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
            if isinstance(sslp, dict) and not sslp:
                return preferred_tls_context()
            return super()._create_ssl_ctx(sslp)  # type: ignore[no-any-return]

    return Connection


def connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    """SQLAlchemy ``do_connect`` hook: open the DBAPI connection with :func:`connection_class`."""
    return connection_class()(*cargs, **cparams)
