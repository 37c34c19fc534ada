"""PyMySQL imported without cryptography's RSA primitives, which it loads only when a login needs them.

``pymysql._auth`` imports ``cryptography.hazmat`` (the Rust bindings and OpenSSL: 7.5 MiB resident
and ~26 ms) at import, for one use: encrypting the password with the server's RSA key when a
``sha256_password`` / ``caching_sha2_password`` login runs over an unencrypted connection.  A beat
or worker logging in with ``mysql_native_password`` (MariaDB's default), over TLS, or from
``caching_sha2_password``'s cache never calls it.  So PyMySQL is imported with those modules
hidden (its own ``ImportError`` branch), and the first RSA login imports them.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

#: What ``pymysql._auth`` imports from cryptography, hidden while PyMySQL is imported.
_DEFERRED = (
    "cryptography.hazmat.backends",
    "cryptography.hazmat.primitives",
    "cryptography.hazmat.primitives.asymmetric",
)


def import_pymysql() -> None:
    """Import PyMySQL (once) with cryptography deferred to the first RSA password exchange."""
    if "pymysql" in sys.modules:
        return
    hidden = [name for name in _DEFERRED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes "import name" raise ImportError
    try:
        _auth: Any = importlib.import_module("pymysql._auth")  # untyped (no stubs installed)
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    if _auth._have_cryptography:
        return  # loaded before us: nothing to defer
    eager = _auth.sha2_rsa_encrypt

    def sha2_rsa_encrypt(password: bytes, salt: bytes, public_key: bytes) -> Any:
        if not _auth._have_cryptography:
            try:
                from cryptography.hazmat.backends import default_backend
                from cryptography.hazmat.primitives import hashes, serialization
                from cryptography.hazmat.primitives.asymmetric import padding
            except ImportError:
                pass  # PyMySQL's own error says cryptography is needed
            else:
                _auth.default_backend, _auth.hashes = default_backend, hashes
                _auth.serialization, _auth.padding = serialization, padding
                _auth._have_cryptography = True
        return eager(password, salt, public_key)

    _auth.sha2_rsa_encrypt = sha2_rsa_encrypt
