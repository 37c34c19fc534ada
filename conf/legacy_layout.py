"""The earlier systems' profile layouts, read as tablebeat profile keys.

- 001 (and 000): a folder per environment, ``conf/<env>/{common,logger,mysql,redis}.toml``;
- 002 (aps-go): ``conf/<env>.toml`` with environments local/test/product (``product`` = ``online``).

Their tables become settings: ``[mysql]`` -> ``database_url`` and ``[redis]`` -> ``broker_url``
(URLs built from host/port/user/password/db), ``[logger]`` (or ``[log]``) -> ``log_file`` and
``log_level``. A file named after a table (``mysql.toml``) may hold its keys at the top level.
Other tables of the old files (``[app]`` in ``common.toml``...) are not tablebeat's and are skipped;
an unknown top-level key is still an error. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: APP_ENV names of the earlier systems -> tablebeat's profile names.
PROFILE_ALIASES = {"product": "online"}
LEGACY_TABLES = ("mysql", "redis", "logger", "log")

_USER = ("user", "username", "usr")
_PASSWORD = ("password", "passwd", "pwd", "pass")
_DB = ("db", "database", "dbname", "db_name", "name", "schema")
_LOG_FILE = ("file", "filename", "file_name", "path", "log_file", "log_path", "filepath", "logfile")
_LOG_LEVEL = ("level", "log_level", "loglevel")


def profile_files(folder: Path, name: str) -> tuple[Path, list[Path]]:
    """Where profile ``name`` lives: ``<name>.toml``, else the folder ``<name>/`` (every ``*.toml``).

    The ``online`` profile is also found as 002's ``product``. Returns (shown path, files); the
    files list is empty when nothing exists.
    """
    names = [name, *[alias for alias, target in PROFILE_ALIASES.items() if target == name]]
    for candidate in names:
        single = folder / f"{candidate}.toml"
        if single.is_file():
            return single, [single]
        directory = folder / candidate
        if directory.is_dir():
            return directory, sorted(directory.glob("*.toml"))
    return folder / f"{name}.toml", []


def _pick(table: Mapping[str, Any], names: tuple[str, ...], what: str) -> Any:
    found = [n for n in names if n in table]
    if len(found) > 1:
        raise ValueError(f"[{what}] gives both {found[0]!r} and {found[1]!r}")
    return table[found[0]] if found else None


def _auth(user: Any, password: Any) -> str:
    if user in (None, "") and password in (None, ""):
        return ""
    user_text = quote(str(user or ""), safe="")
    return f"{user_text}:{quote(str(password or ''), safe='')}@" if password not in (None, "") else f"{user_text}@"


def mysql_url(table: Mapping[str, Any]) -> str:
    """``mysql+pymysql://user:password@host:port/db?charset=…`` of a ``[mysql]`` table."""
    if "url" in table:
        return str(table["url"])
    host = table.get("host") or "127.0.0.1"
    port = int(table.get("port") or 3306)
    database = _pick(table, _DB, "mysql")
    if not database:
        raise ValueError("[mysql] names no database (db = '…')")
    charset = table.get("charset") or "utf8mb4"
    auth = _auth(_pick(table, _USER, "mysql"), _pick(table, _PASSWORD, "mysql"))
    return f"mysql+pymysql://{auth}{host}:{port}/{quote(str(database), safe='')}?charset={charset}"


def redis_url(table: Mapping[str, Any]) -> str:
    """``redis://[user:password@]host:port/db`` of a ``[redis]`` table."""
    if "url" in table:
        return str(table["url"])
    host = table.get("host") or "127.0.0.1"
    port = int(table.get("port") or 6379)
    database = _pick(table, _DB, "redis")
    auth = _auth(_pick(table, _USER, "redis"), _pick(table, _PASSWORD, "redis"))
    return f"redis://{auth}{host}:{port}/{int(database or 0)}"


def translate(data: Mapping[str, Any], stem: str) -> dict[str, Any]:
    """tablebeat keys of one old profile file (``stem``: its name without ``.toml``).

    :raises ValueError: a legacy table that cannot be read (no database, two spellings of a key).
    """
    out: dict[str, Any] = {}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    plain = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    if stem in LEGACY_TABLES and stem not in tables and plain:
        tables[stem], plain = plain, {}  # mysql.toml holding host/port/... at the top level
    out.update(plain)
    for name, table in tables.items():
        if name == "mysql":
            out["database_url"] = mysql_url(table)
        elif name == "redis":
            out["broker_url"] = redis_url(table)
        elif name in ("logger", "log"):
            log_file = _pick(table, _LOG_FILE, name)
            level = _pick(table, _LOG_LEVEL, name)
            if log_file:
                out["log_file"] = str(log_file)
            if level:
                out["log_level"] = str(level)
        # any other table belonged to the old application: not a tablebeat setting
    return out
