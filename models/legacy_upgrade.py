"""In-place steps for the earlier MySQL schemas, run by revision 0001 before its own.

- 000/001 (``task`` + ``execute_task``) need nothing here but the run-status mapping.
- 002 (aps-go: ``task`` with ``params`` and no ``trigger``, ``task_execute`` with ``trace_id``,
  ``ROW_FORMAT=Compact``): tables converted to ``ROW_FORMAT=DYNAMIC`` (a Compact table cannot
  hold the 1,020-byte utf8mb4 ``task_key`` index, error 1709), ``task_execute`` renamed to
  ``execute_task``, ``trigger`` filled from the aps-go spec (robfig cron with the seconds field
  first, ``@every 5s``, ``CRON_TZ=``), ``params`` moved to ``args`` (or ``kwargs`` when it
  holds a JSON object).

MySQL DDL is not transactional, so every step looks before it acts: a run cut off anywhere
is finished by running ``tablebeat db upgrade`` again, and changes nothing twice.
"""

from __future__ import annotations

import json
import logging
import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

log = logging.getLogger("alembic.runtime.migration")

#: Tables an earlier system may have left; Compact/Redundant ones are converted first.
LEGACY_TABLES = ("task", "execute_task", "task_execute")
#: Earlier run statuses -> tablebeat's. Anything else (a run cut off by the switch) becomes ``lost``.
RUN_STATUS_MAP = {
    **dict.fromkeys(("success", "succeed", "succeeded", "done", "finish", "finished", "ok", "complete"), "success"),
    **dict.fromkeys(("completed", "end", "ended"), "success"),
    **dict.fromkeys(("failed", "fail", "failure", "error", "err", "exception", "timeout", "panic"), "failed"),
}
#: Final statuses kept as they are; a legacy run still pending/running never finishes now.
KEPT_RUN_STATUSES = ("success", "failed", "skipped", "lost", "expired")

_GO_DURATION = re.compile(r"(?:([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|ns))+")
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|ns)")
_GO_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def _columns(bind: Connection, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(bind).get_columns(table)}


def _tables(bind: Connection) -> set[str]:
    return set(sa.inspect(bind).get_table_names())


def convert_row_formats(bind: Connection) -> None:
    """Give every legacy table ``ROW_FORMAT=DYNAMIC``, before any other DDL touches it."""
    rows = bind.execute(
        sa.text(
            "SELECT TABLE_NAME, ROW_FORMAT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('task', 'execute_task', 'task_execute')"
        )
    ).all()
    for table, row_format in rows:
        if (row_format or "").lower() in ("compact", "redundant"):
            log.info("converting %s from ROW_FORMAT=%s to DYNAMIC (wide utf8mb4 index keys)", table, row_format)
            bind.exec_driver_sql(f"ALTER TABLE `{table}` ROW_FORMAT=DYNAMIC")


def aps_go_schedule(spec: str) -> tuple[str, str, str | None]:
    """(trigger, spec, timezone) of an aps-go spec; a spec it cannot read is kept for beat to report.

    aps-go ran robfig/cron with seconds: ``sec min hour dom mon dow``; tablebeat's cron puts the
    optional seconds field last: ``min hour dom mon dow [sec]``.
    """
    text = " ".join((spec or "").split())
    timezone = None
    match = re.match(r"(?:CRON_TZ|TZ)=(\S+)\s+(.*)", text)
    if match:
        timezone, text = match.group(1), match.group(2)
    if text.startswith("@every"):
        duration = text[len("@every") :].strip()
        if _GO_DURATION.fullmatch(duration):
            seconds = sum(float(n) * _GO_UNIT_S[u] for n, u in _GO_PART.findall(duration))
            if seconds >= 1 and seconds == int(seconds):
                return "interval", str(int(seconds)), timezone
        return "interval", duration, timezone
    fields = text.split(" ")
    if len(fields) == 6 and not text.startswith("@"):
        second, rest = fields[0], fields[1:]
        text = " ".join(rest if second == "0" else [*rest, second])
    return "cron", text, timezone


def _params_columns(params: str) -> tuple[str, str]:
    """(args, kwargs) of an aps-go ``params`` value: a JSON object is keyword arguments."""
    text = (params or "").strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return "", json.dumps(value, ensure_ascii=False)
    return text, "{}"


def upgrade_aps_go(bind: Connection) -> None:
    """The 002 steps: rename ``task_execute``, add and fill ``trigger``, move ``params``."""
    tables = _tables(bind)
    if "task_execute" in tables and "execute_task" not in tables:
        log.info("renaming aps-go's task_execute to execute_task")
        bind.exec_driver_sql("RENAME TABLE `task_execute` TO `execute_task`")
    if "task" not in tables:
        return
    columns = _columns(bind, "task")
    missing = [
        clause
        for name, clause in (
            ("trigger", "ADD COLUMN `trigger` VARCHAR(255) NULL"),
            ("args", "ADD COLUMN `args` TEXT NULL"),
            ("kwargs", "ADD COLUMN `kwargs` TEXT NULL"),
            ("timezone", "ADD COLUMN `timezone` VARCHAR(64) NULL"),
        )
        if name not in columns
    ]
    if "params" not in columns and "trigger" in columns:
        return  # not aps-go, or already done
    if missing:
        bind.exec_driver_sql("ALTER TABLE `task` " + ", ".join(missing))
    keep = "`update_at` = `update_at`"
    has_params = "params" in columns
    select = "SELECT `id`, `spec`" + (", `params`" if has_params else ", NULL") + " FROM `task`"
    select += " WHERE `trigger` IS NULL OR `trigger` = ''"
    # One statement per row sets trigger, spec and args together: a row is converted or not.
    for task_id, spec, params in bind.exec_driver_sql(select).all():
        trigger, new_spec, timezone = aps_go_schedule(spec or "")
        args, kwargs = _params_columns(params or "")
        bind.execute(
            sa.text(
                "UPDATE `task` SET `trigger` = :t, `spec` = :s, `args` = :a, `kwargs` = :k, "
                f"`timezone` = COALESCE(`timezone`, :z), {keep} WHERE `id` = :i"
            ),
            {"t": trigger, "s": new_spec, "a": args, "k": kwargs, "z": timezone, "i": task_id},
        )
    if has_params:
        log.info("aps-go params moved to args/kwargs; dropping task.params")
        bind.exec_driver_sql("ALTER TABLE `task` DROP COLUMN `params`")


def map_run_statuses(bind: Connection) -> None:
    """Earlier run statuses -> tablebeat's; a run that never finished under the old system is ``lost``."""
    if "execute_task" not in _tables(bind):
        return
    keep = "`update_at` = `update_at`" if "update_at" in _columns(bind, "execute_task") else ""
    known = ", ".join(f"'{s}'" for s in KEPT_RUN_STATUSES)
    for old, new in RUN_STATUS_MAP.items():
        if old == new:
            continue
        bind.execute(
            sa.text(f"UPDATE `execute_task` SET `status` = :new{', ' + keep if keep else ''} WHERE `status` = :old"),
            {"new": new, "old": old},
        )
    bind.exec_driver_sql(
        f"UPDATE `execute_task` SET `status` = 'lost'{', ' + keep if keep else ''} "
        f"WHERE `status` IS NULL OR `status` NOT IN ({known})"
    )


def prepare(bind: Connection) -> None:
    """Everything an earlier schema needs before revision 0001's own in-place steps."""
    convert_row_formats(bind)
    upgrade_aps_go(bind)
