"""The earlier systems' profile layouts: 001's ``conf/<env>/*.toml`` folders and 002's ``conf/<env>.toml``
with ``product``; their ``[mysql]``, ``[redis]`` and ``[logger]`` tables become settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conf.legacy_layout import mysql_url, redis_url, translate
from conf.profiles import SettingsError, load_profile
from tests.helpers import sql
from tests.legacy.conftest import legacy_env
from tests.processes import Cluster, wait_for

#: 001's files as its document lays them out (conf/local/common.toml, logger.toml, mysql.toml, redis.toml).
AIO_001 = {
    "common.toml": '[app]\nname = "aps"\ndebug = true\n',
    "logger.toml": '[logger]\npath = "{log}"\nlevel = "DEBUG"\n',
    "mysql.toml": '[mysql]\nhost = "{host}"\nport = {port}\nuser = "{user}"\npassword = "{password}"\ndb = "{db}"\n',
    "redis.toml": '[redis]\nhost = "127.0.0.1"\nport = 6379\ndb = {redis_db}\npassword = ""\n',
}


def write_001(folder: Path, env: str, **values: object) -> Path:
    (folder / env).mkdir(parents=True)
    for name, text in AIO_001.items():
        (folder / env / name).write_text(text.format(**values))
    return folder


def test_url_building() -> None:
    assert mysql_url({"host": "db", "port": 3307, "user": "u", "password": "p@ss/w", "db": "task"}) == (
        "mysql+pymysql://u:p%40ss%2Fw@db:3307/task?charset=utf8mb4"
    )
    assert (
        mysql_url({"host": "db", "user": "root", "database": "t"}) == "mysql+pymysql://root@db:3306/t?charset=utf8mb4"
    )
    assert redis_url({"host": "r", "port": 6380, "password": "s", "db": 2}) == "redis://:s@r:6380/2"
    assert redis_url({}) == "redis://127.0.0.1:6379/0"
    with pytest.raises(ValueError, match="no database"):
        mysql_url({"host": "db"})
    # mysql.toml holding its keys at the top level is the [mysql] table
    assert translate({"host": "h", "db": "d"}, "mysql") == {"database_url": "mysql+pymysql://h:3306/d?charset=utf8mb4"}


def test_001_folder_layout_loads(tmp_path: Path) -> None:
    write_001(
        tmp_path,
        "local",
        log=tmp_path / "app.log",
        host="db",
        port=3306,
        user="root",
        password="pw",
        db="task",
        redis_db=3,
    )
    profile = load_profile({"APP_ENV": "local"}, conf_dir=tmp_path)
    assert profile.values["database_url"] == "mysql+pymysql://root:pw@db:3306/task?charset=utf8mb4"
    assert profile.values["broker_url"] == "redis://127.0.0.1:6379/3"
    assert profile.values["log_file"] == str(tmp_path / "app.log") and profile.values["log_level"] == "DEBUG"
    # The environment still wins over the files.
    profile = load_profile({"APP_ENV": "local", "TABLEBEAT_LOG_LEVEL": "warning"}, conf_dir=tmp_path)
    assert profile.values["log_level"] == "WARNING"


def test_002_product_profile_loads(tmp_path: Path) -> None:
    (tmp_path / "product.toml").write_text(
        '[mysql]\nhost = "10.0.0.5"\nuser = "task"\npassword = "x"\ndb = "task"\n\n'
        '[redis]\nhost = "10.0.0.6"\n\n[log]\nfile = "/var/log/aps/aps.log"\nlevel = "info"\n'
    )
    profile = load_profile({"APP_ENV": "product"}, conf_dir=tmp_path)
    assert profile.name == "online" and profile.path.name == "product.toml"
    assert make_url(profile.values["database_url"]).host == "10.0.0.5"
    assert profile.values["broker_url"] == "redis://10.0.0.6:6379/0"
    assert profile.values["log_file"] == "/var/log/aps/aps.log" and profile.values["log_level"] == "INFO"


def test_bad_legacy_values_name_the_setting(tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "mysql.toml").write_text('[mysql]\nhost = "db"\n')
    with pytest.raises(SettingsError, match="mysql.toml.*no database"):
        load_profile({"APP_ENV": "test"}, conf_dir=tmp_path)
    (tmp_path / "test" / "mysql.toml").write_text('[mysql]\nhost = "db"\ndb = "t"\n')
    (tmp_path / "test" / "common.toml").write_text("refresh_secs = 3\n")
    with pytest.raises(SettingsError, match="unknown setting 'refresh_secs'"):
        load_profile({"APP_ENV": "test"}, conf_dir=tmp_path)
    (tmp_path / "test" / "common.toml").write_text("")
    (tmp_path / "test" / "logger.toml").write_text('[logger]\nlevel = "LOUD"\n')
    with pytest.raises(SettingsError, match="TABLEBEAT_LOG_LEVEL"):
        load_profile({"APP_ENV": "test"}, conf_dir=tmp_path)


@pytest.mark.integration
@pytest.mark.mariadb
def test_worker_and_beat_run_from_a_001_folder(mariadb_url: str, broker_url: str, tmp_path: Path) -> None:
    db, broker = make_url(mariadb_url), make_url(broker_url)
    conf = write_001(
        tmp_path / "conf",
        "test",
        log=tmp_path / "aps.log",
        host=db.host,
        port=db.port or 3306,
        user=db.username,
        password=db.password or "",
        db=db.database,
        redis_db=broker.database,
    )
    env = legacy_env("", "")
    for key in ("TABLEBEAT_DATABASE_URL", "TABLEBEAT_BROKER_URL"):
        env.pop(key)
    env.update(APP_ENV="test", TABLEBEAT_CONF_DIR=str(conf))
    cluster = Cluster(env, tmp_path)
    from models import make_engine

    engine = make_engine(mariadb_url)
    try:
        sql(
            engine,
            "INSERT INTO task (task_key, execute_func, `trigger`, spec, args, is_valid, status, extra) "
            "VALUES ('from_001_conf', 'test_interval', 'interval', '1', '7', 1, 'ready', '{}')",
        )
        cluster.start_worker()
        cluster.start_beat()
        wait_for(
            lambda: sql(
                engine,
                "SELECT e.id FROM execute_task e JOIN task t ON t.id = e.task_id "
                "WHERE t.task_key = 'from_001_conf' AND e.status = 'success'",
            ),
            40,
            what="a run through the 001 profile's database and broker",
        )
        log = (tmp_path / "aps.log").read_text()
        assert "task_key=from_001_conf" in log and "DEBUG" in log, log[-2000:]
    finally:
        cluster.stop_all()
        engine.dispose()
        os.environ.pop("TABLEBEAT_CONF_DIR", None)
