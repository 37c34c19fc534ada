"""``tablebeat prune --older-than`` durations: any text gives a duration in range or a ValueError
(never an OverflowError traceback), and well-formed ones add up (issue 9 item 6)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from cli.prune import parse_duration
from service.tasks import PRUNE_MAX_WEEKS

_LONGEST = timedelta(weeks=PRUNE_MAX_WEEKS)
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


@given(st.text(alphabet="0123456789wdhms ²x-", max_size=40) | st.text(max_size=40))
def test_any_text_is_a_duration_in_range_or_a_value_error(text: str) -> None:
    try:
        age = parse_duration(text)
    except ValueError:
        return
    assert timedelta(0) < age <= _LONGEST


@given(st.dictionaries(st.sampled_from(sorted(_UNITS)), st.integers(0, 10**25), min_size=1))
def test_parts_add_up_or_are_refused_as_too_long(parts: dict[str, int]) -> None:
    text = "".join(f"{amount}{unit}" for unit, amount in parts.items())
    seconds = sum(amount * _UNITS[unit] for unit, amount in parts.items())
    try:
        age = parse_duration(text)
    except ValueError as exc:
        assert seconds == 0 or seconds > _LONGEST.total_seconds(), exc
        return
    assert age == timedelta(seconds=seconds)


def test_the_longest_age_is_accepted_and_one_second_more_is_not() -> None:
    assert parse_duration(f"{PRUNE_MAX_WEEKS}w") == _LONGEST
    try:
        parse_duration(f"{PRUNE_MAX_WEEKS}w1s")
    except ValueError as exc:
        assert "maximum" in str(exc)
    else:
        raise AssertionError("one second beyond the maximum was accepted")
