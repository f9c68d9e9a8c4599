"""Concurrency and rate limit rules, pure: admission by strategy, free slots, slot keys, rates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.core.limits import MAX_KEY, Admission, Rate, Strategy, admit, free_slots, slot_key


@pytest.mark.parametrize(
    ("strategy", "running", "expected"),
    [
        (Strategy.QUEUE, 1, Admission.START),
        (Strategy.QUEUE, 2, Admission.QUEUE),
        (Strategy.CANCEL_NEWEST, 2, Admission.CANCEL),
        (Strategy.CANCEL_NEWEST, 0, Admission.START),
        (Strategy.CANCEL_IN_PROGRESS, 3, Admission.CANCEL_OLDEST),
    ],
)
def test_a_new_execution_is_admitted_by_its_strategy(
    strategy: Strategy, running: int, expected: Admission
) -> None:
    assert admit(strategy, running, max_running=2) is expected


@given(st.integers(0, 50), st.integers(1, 50))
def test_free_slots_never_go_below_zero_nor_above_the_limit(running: int, max_running: int) -> None:
    assert 0 <= free_slots(running, max_running) <= max_running
    assert (free_slots(running, max_running) > 0) == (
        admit(Strategy.QUEUE, running, max_running) is Admission.START
    )


def test_slot_keys_separate_workflows_and_values_and_stay_short() -> None:
    assert slot_key("export") == "export"
    assert slot_key("export", "c-1", keyed=True) == 'export="c-1"'
    assert slot_key("export", 1, keyed=True) != slot_key("export", "1", keyed=True)
    assert slot_key("export", {"b": 1, "a": 2}, keyed=True) == slot_key(
        "export", {"a": 2, "b": 1}, keyed=True
    )
    long_one, other = slot_key("export", "x" * 1000, keyed=True), slot_key("export", "x" * 999, keyed=True)
    assert len(long_one) <= MAX_KEY and long_one != other


@pytest.mark.parametrize(
    ("text", "count", "period"), [("100/m", 100, 60), ("5/s", 5, 1), (" 7 / h ", 7, 3600)]
)
def test_rates_parse(text: str, count: int, period: int) -> None:
    assert Rate.parse(text) == Rate(count, period)


@pytest.mark.parametrize("text", ["0/s", "5/d", "five/s", "5", "", "-1/s", "1.5/s"])
def test_bad_rates_say_what_a_rate_is(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. '100/m'"):
        Rate.parse(text)
