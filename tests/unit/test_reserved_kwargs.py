"""Reserved keyword names: kwargs keys the call itself uses are refused, naming ``kwargs`` (issue 9 item 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.message import RESERVED_KWARGS, SUB_TASK_ID, TASK_KEY_ARG, TRACE_KWARG
from scheduler.errors import RowError
from scheduler.specs import parse_kwargs

_VALUES = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_IDENTIFIERS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


def test_every_name_the_call_uses_is_reserved() -> None:
    # ``self``: RecordedTask.__call__(self, ...); task_key: the job's first positional
    # argument; sub_task_id and the trace ID: added to every run's kwargs.
    assert {"self", "task_key", "sub_task_id", "__unique_trace_id__"} <= RESERVED_KWARGS
    assert {TASK_KEY_ARG, SUB_TASK_ID, TRACE_KWARG} <= RESERVED_KWARGS


@pytest.mark.parametrize("name", sorted({"self", "task_key", "sub_task_id", "__unique_trace_id__"}))
def test_reserved_key_is_refused_naming_kwargs(name: str) -> None:
    with pytest.raises(RowError) as caught:
        parse_kwargs(json.dumps({"channel": "#ops", name: 1}))
    assert caught.value.column == "kwargs"
    assert repr(name) in caught.value.reason and "reserved" in caught.value.reason


@given(
    name=st.sampled_from(sorted(RESERVED_KWARGS)),
    others=st.dictionaries(_IDENTIFIERS, _VALUES, max_size=4),
    value=_VALUES,
)
def test_any_object_holding_a_reserved_key_is_refused(name: str, others: dict[str, Any], value: Any) -> None:
    with pytest.raises(RowError) as caught:
        parse_kwargs(json.dumps({**others, name: value}))
    assert caught.value.column == "kwargs"


@given(st.dictionaries(_IDENTIFIERS.filter(lambda k: k not in RESERVED_KWARGS), _VALUES, max_size=6))
def test_objects_without_reserved_keys_parse_unchanged(kwargs: dict[str, Any]) -> None:
    assert parse_kwargs(json.dumps(kwargs)) == kwargs
