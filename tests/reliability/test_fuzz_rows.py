"""Issue 4 item 7, property side: any text in any config column either compiles or raises one
``RowError`` naming a column -- never another exception, never an import or an evaluation.
(The individual parsers are fuzzed in ``tests/unit/test_specs.py``; this fuzzes whole rows.)"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.errors import RowError
from scheduler.rows import compile_row, registered_set

REGISTERED = registered_set({"test_interval", "noop"})
COLUMNS = {
    "task_key",
    "execute_func",
    "trigger",
    "spec",
    "args",
    "kwargs",
    "timezone",
    "queue",
    "max_instances",
    "misfire_grace_seconds",
    "expires_seconds",
    "is_valid",
    "extra",
}
ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)

hostile_text = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.sampled_from(
        [
            "os.system",
            "builtins.eval",
            "../x",
            "__import__('os').system('id')",
            "1,",
            '"abc',
            "61 * * * *",
            "* * *",
            "every tuesday",
            "0",
            "-5",
            "abc",
            "1e309",
            "2023-02-30",
            "[1, 2]",
            "{a: 1}",
            "Mars/Olympus",
            "../../etc/passwd",
            "x" * 5000,
            "\x00",
            "NaN",
            "inf",
            "{}",
            "[]",
            "test_interval",
            "cron",
            "interval",
            "date",
        ]
    ),
)
numbers = st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**40), st.text(max_size=5))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    execute_func=hostile_text,
    trigger=hostile_text,
    spec=hostile_text,
    args=hostile_text,
    kwargs=hostile_text,
    tz=hostile_text,
    queue=hostile_text,
    max_instances=numbers,
    grace=numbers,
    expires=numbers,
    is_valid=numbers,
    extra=hostile_text,
)
def test_any_row_compiles_or_names_a_column(
    execute_func, trigger, spec, args, kwargs, tz, queue, max_instances, grace, expires, is_valid, extra
) -> None:
    row = SimpleNamespace(
        id=1,
        task_key="fuzz",
        execute_func=execute_func,
        trigger=trigger,
        spec=spec,
        args=args,
        kwargs=kwargs,
        timezone=tz,
        queue=queue,
        max_instances=max_instances,
        misfire_grace_seconds=grace,
        expires_seconds=expires,
        is_valid=is_valid,
        extra=extra,
        anchor=ANCHOR,
        last_run_at=None,
    )
    modules = set(sys.modules)
    try:
        job = compile_row(row, registered=REGISTERED, default_timezone="UTC", default_grace_seconds=60)
    except RowError as exc:
        assert exc.column in COLUMNS and str(exc).startswith(f"{exc.column}: ")
        assert len(str(exc)) < 2000
    else:
        assert job.task_key == "fuzz"
    assert set(sys.modules) - modules <= {"zoneinfo._tzpath"}, set(sys.modules) - modules  # nothing imported
