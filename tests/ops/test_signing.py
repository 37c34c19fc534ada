"""Optional message signing (``TABLEBEAT_SIGNING_*``, Celery's ``auth`` serializer) with real
beat, worker and ``tablebeat task run`` on MariaDB + Redis: signed runs work, and a message
sent without the key, or signed by a certificate the workers do not trust, runs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import Engine

from conf.celery import signing_config
from conf.settings import Settings, SettingsError
from protocol.signing import CERT_ENV, STORE_ENV
from tests.helpers import cluster_env, insert_task, sql
from tests.processes import REPO, CeleryProcess, Cluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


def make_identity(folder: Path, name: str) -> tuple[Path, Path]:
    """A fresh RSA key and its self-signed certificate, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def test_settings_need_all_three_and_real_files(tmp_path: Path) -> None:
    assert signing_config(Settings()) == {}
    key, cert = make_identity(tmp_path, "one")
    with pytest.raises(SettingsError, match=f"{CERT_ENV}, {STORE_ENV}: must be set too"):
        Settings(signing_key=str(key))
    with pytest.raises(SettingsError, match="TABLEBEAT_SIGNING_KEY: '/nope' is not a file"):
        Settings(signing_key="/nope", signing_cert=str(cert), signing_cert_store=str(tmp_path))
    on = signing_config(Settings(signing_key=str(key), signing_cert=str(cert), signing_cert_store=str(tmp_path)))
    assert on["task_serializer"] == "auth" and on["accept_content"] == ["auth"]


def test_half_configured_signing_stops_celery_with_one_line(mariadb_url: str, broker_url: str) -> None:
    env = cluster_env(mariadb_url, broker_url, TABLEBEAT_SIGNING_KEY="/nope")
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers", "inspect", "ping", "--timeout", "1"],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"tablebeat: invalid configuration: {CERT_ENV}, {STORE_ENV}: must be set too" in done.stderr


@pytest.fixture(scope="module")
def signed(
    mariadb_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CeleryProcess, dict[str, str]]]:
    """Beat and a worker that sign and check every message; yields the worker and the environment."""
    keys = tmp_path_factory.mktemp("keys")
    key, cert = make_identity(keys / "tablebeat", "tablebeat")
    store = keys / "trusted"  # certificates only: the store reads every file in it
    store.mkdir()
    (store / cert.name).write_bytes(cert.read_bytes())
    env = cluster_env(
        mariadb_url,
        broker_url,
        TABLEBEAT_SIGNING_KEY=str(key),
        TABLEBEAT_SIGNING_CERT=str(cert),
        TABLEBEAT_SIGNING_CERT_STORE=str(store),
    )
    cluster = Cluster(env, tmp_path_factory.mktemp("signed"))
    try:
        worker = cluster.start_worker()
        cluster.start_beat()
        yield worker, env
    finally:
        cluster.stop_all()


def successes(db: Engine, task_id: int) -> int:
    return int(sql(db, "SELECT COUNT(*) FROM execute_task WHERE task_id = :t AND status = 'success'", t=task_id)[0][0])


def test_signed_beat_and_run_now_messages_run(signed: tuple[CeleryProcess, dict[str, str]], db: Engine) -> None:
    worker, env = signed
    task_id = insert_task(db, "signed_tick", "test_interval", "interval", "2")
    wait_for(lambda: successes(db, task_id) >= 1, 60, what="a run of a message beat signed")
    sql(db, "UPDATE task SET is_valid = 0 WHERE id = :t", t=task_id)
    before = successes(db, task_id)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "task", "run", "signed_tick"],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: successes(db, task_id) > before, 60, what="a run-now message the service signed")
    assert "Refusing" not in worker.log()


def _pending_run(db: Engine, key: str) -> int:
    task_id = insert_task(db, key, "test_interval", "interval", "1h")
    sql(db, "UPDATE task SET is_valid = 0 WHERE id = :t", t=task_id)
    sql(
        db,
        "INSERT INTO execute_task (task_id, status, scheduled_at, trace_id, extra, attempt) "
        "VALUES (:t, 'pending', UTC_TIMESTAMP(6), :tr, '{}', 1)",
        t=task_id,
        tr=f"trace-{key}",
    )
    return int(sql(db, "SELECT id FROM execute_task WHERE task_id = :t", t=task_id)[0][0])


def _forger(env: dict[str, str]) -> Celery:
    app = Celery("forger", broker=env["TABLEBEAT_BROKER_URL"], set_as_current=False)
    app.conf.task_ignore_result = True
    return app


def test_unsigned_message_runs_nothing(signed: tuple[CeleryProcess, dict[str, str]], db: Engine) -> None:
    worker, env = signed
    run_id = _pending_run(db, "forged_plain")
    seen = worker.log().count("Refusing to deserialize untrusted content")
    with _forger(env) as app:
        forged = app.send_task("test_interval", args=("forged_plain",), kwargs={"sub_task_id": run_id}).id
    wait_for(lambda: worker.log().count("Refusing to deserialize untrusted content") > seen, 30, what="the refusal")
    # Never received as a task: no run started for it (beat may republish the pending row itself, signed).
    assert f"[{forged}] received" not in worker.log()
    assert f"{forged}" not in sql(db, "SELECT COALESCE(celery_id, '') FROM execute_task WHERE id = :r", r=run_id)[0][0]


def test_message_signed_by_an_untrusted_key_runs_nothing(
    signed: tuple[CeleryProcess, dict[str, str]], db: Engine, tmp_path: Path
) -> None:
    from celery.security.serialization import register_auth
    from kombu.serialization import registry

    worker, env = signed
    run_id = _pending_run(db, "forged_signed")
    key, cert = make_identity(tmp_path / "intruder", "intruder")
    before = worker.log()
    register_auth(key.read_text(), None, cert.read_text(), None, "sha256", "json")
    try:
        with _forger(env) as app:
            forged = app.send_task(
                "test_interval", args=("forged_signed",), kwargs={"sub_task_id": run_id}, serializer="auth"
            ).id
    finally:
        registry.unregister("auth")  # this test process keeps no signing serializer
    wait_for(lambda: "ertificate" in worker.log()[len(before) :], 30, what="the worker to refuse the signature")
    # Never received as a task: no run started for it (beat may republish the pending row itself, signed).
    assert f"[{forged}] received" not in worker.log()
    assert f"{forged}" not in sql(db, "SELECT COALESCE(celery_id, '') FROM execute_task WHERE id = :r", r=run_id)[0][0]
    assert os.environ.get("TABLEBEAT_SIGNING_KEY") is None
