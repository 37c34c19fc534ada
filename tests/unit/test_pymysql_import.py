"""PyMySQL is imported without cryptography's RSA primitives; the first RSA password exchange loads them."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_engine_for_pymysql_does_not_import_cryptography() -> None:
    out = _run(
        """
        import sys
        from models import make_engine
        make_engine("mysql+pymysql://root@127.0.0.1:3306/unused")
        import pymysql
        print("pymysql" in sys.modules, any(m.startswith("cryptography.hazmat") for m in sys.modules))
        """
    )
    assert out == "True False"


def test_rsa_password_exchange_loads_cryptography_on_first_use() -> None:
    out = _run(
        """
        import sys
        from models.pymysql_import import import_pymysql
        import_pymysql()
        from pymysql import _auth
        assert not _auth._have_cryptography
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.hazmat.primitives import hashes
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        sealed = _auth.sha2_rsa_encrypt(b"secret", b"s" * 20, pem)
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
        print(_auth._have_cryptography, key.decrypt(sealed, oaep) == _auth._xor_password(b"secret\\0", b"s" * 20))
        """
    )
    assert out == "True True"


def test_pymysql_imported_first_is_left_alone() -> None:
    out = _run(
        """
        import pymysql
        from pymysql import _auth
        eager = _auth.sha2_rsa_encrypt
        from models.pymysql_import import import_pymysql
        import_pymysql()
        print(_auth.sha2_rsa_encrypt is eager, _auth._have_cryptography)
        """
    )
    assert out == "True True"
