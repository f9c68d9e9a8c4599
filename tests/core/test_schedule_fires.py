"""The schedule rules for what is shown and what started nothing, pure: an interval's first fire
time, the next fire times as the scheduler would start them, runs of missed fire times, and why
a fire time was skipped."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.core.schedules import (
    MAX_COUNTED,
    Missed,
    Overlap,
    Timing,
    due,
    skip_reason,
    upcoming,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
EVERY_MINUTE = Timing(every=60, anchor=T0)


def test_an_interval_schedule_first_fires_one_interval_after_its_creation() -> None:
    assert Timing(every=30, anchor=T0).first_fire(T0) == T0 + timedelta(seconds=30)


def test_a_cron_schedule_first_fires_at_its_first_time_after_its_creation() -> None:
    nightly = Timing(cron="0 2 * * *", anchor=T0)
    assert nightly.first_fire(datetime(2030, 1, 1, 2, tzinfo=UTC)) == datetime(2030, 1, 2, 2, tzinfo=UTC)
    assert nightly.first_fire(datetime(2030, 1, 1, 1, 59, tzinfo=UTC)) == datetime(2030, 1, 1, 2, tzinfo=UTC)


def test_the_next_fire_times_of_a_new_schedule_start_with_its_first_fire_time() -> None:
    timing = Timing(every=30, anchor=T0)
    shown = upcoming(timing, timing.first_fire(T0), T0, catchup_window=0, late_after=60)
    assert shown == [T0 + timedelta(seconds=s) for s in (30, 60, 90, 120, 150)]


def test_a_fire_time_due_a_moment_ago_is_shown_first_as_the_scheduler_still_starts_it() -> None:
    shown = upcoming(EVERY_MINUTE, T0, T0 + timedelta(seconds=5), catchup_window=0, late_after=60)
    assert shown[:2] == [T0, T0 + timedelta(minutes=1)]


def test_after_a_downtime_the_fire_times_shown_skip_those_that_would_be_missed() -> None:
    now = T0 + timedelta(minutes=10, seconds=5)
    shown = upcoming(EVERY_MINUTE, T0, now, catchup_window=0, late_after=60)
    assert shown[:2] == [T0 + timedelta(minutes=10), T0 + timedelta(minutes=11)]


@given(
    every=st.integers(1, 3600),
    cursor_at=st.integers(0, 100),
    behind=st.floats(-5000, 50_000),
    window=st.integers(0, 5000),
    late=st.floats(0, 120),
)
def test_what_is_shown_first_is_what_the_scheduler_starts(
    every: int, cursor_at: int, behind: float, window: int, late: float
) -> None:
    timing = Timing(every=every, anchor=T0)
    cursor = T0 + cursor_at * timedelta(seconds=every)
    now = cursor + timedelta(seconds=behind)
    shown = upcoming(timing, cursor, now, catchup_window=window, late_after=late)
    decided = due(timing, cursor, now, catchup_window=window, late_after=late)
    assert shown[: len(decided.start)] == decided.start[:5]
    assert shown == sorted(set(shown)) and len(shown) == 5
    later = shown[len(decided.start) :]
    assert all(t >= (decided.cursor or cursor) for t in later)
    if later and decided.cursor is not None:
        assert later[0] == decided.cursor


@given(
    every=st.integers(1, 3600),
    behind=st.floats(0, 50_000),
    window=st.integers(0, 5000),
    late=st.floats(0, 120),
)
def test_every_fire_time_due_either_starts_or_is_in_the_missed_run(
    every: int, behind: float, window: int, late: float
) -> None:
    timing = Timing(every=every, anchor=T0)
    now = T0 + timedelta(seconds=behind)
    decided = due(timing, T0, now, catchup_window=window, late_after=late)
    fire_times = (now - T0) // timedelta(seconds=every) + 1
    missed = decided.missed
    assert ((missed.count or 0) if missed else 0) + len(decided.start) == fire_times
    if missed is not None:
        assert missed.first == T0 == decided.missed_since
        assert not decided.start or missed.last < decided.start[0]
        assert missed.count is not None
        assert missed.last == T0 + (missed.count - 1) * timedelta(seconds=every)
    else:
        assert decided.missed_since is None


def test_a_downtime_records_the_missed_fire_times_as_one_run() -> None:
    now = T0 + timedelta(minutes=10, seconds=5)
    decided = due(EVERY_MINUTE, T0, now, catchup_window=0, late_after=60)
    assert decided.start == [T0 + timedelta(minutes=10)]
    assert decided.missed == Missed(T0, T0 + timedelta(minutes=9), 10)


def test_missed_cron_fire_times_are_counted_up_to_a_bound() -> None:
    daily = Timing(cron="0 2 * * *")
    two = datetime(2030, 1, 1, 2, tzinfo=UTC)
    assert daily.missed(two, two + timedelta(days=3)) == Missed(two, two + timedelta(days=2), 3)
    every_minute = Timing(cron="* * * * *")
    end = T0 + timedelta(minutes=MAX_COUNTED + 50)
    assert every_minute.missed(T0, end) == Missed(T0, end - timedelta(minutes=1), None)
    assert every_minute.missed(T0, T0) is None


def test_the_fire_time_before_a_moment() -> None:
    assert EVERY_MINUTE.before(T0) is None
    assert EVERY_MINUTE.before(T0 + timedelta(seconds=60)) == T0
    assert EVERY_MINUTE.before(T0 + timedelta(seconds=61)) == T0 + timedelta(seconds=60)
    paris = Timing(cron="0 2 * * *", timezone="Europe/Paris")
    # 02:00 in Paris is 01:00 UTC in winter
    assert paris.before(datetime(2030, 1, 2, 1, tzinfo=UTC)) == datetime(2030, 1, 1, 1, tzinfo=UTC)
    assert paris.before(datetime(2030, 1, 2, 1, 0, 1, tzinfo=UTC)) == datetime(2030, 1, 2, 1, tzinfo=UTC)


def test_a_skip_says_which_policy_skipped_it_and_which_execution_still_ran() -> None:
    assert skip_reason(Overlap.SKIP, ["e-1"]) == "overlap skip: the previous execution (e-1) still ran"
    assert "a start already waited" in skip_reason(Overlap.BUFFER_ONE)


def test_missed_runs_of_every_timing_are_exact() -> None:
    for every, minutes in itertools.product((1, 7, 60), (1, 5, 30)):
        timing = Timing(every=every, anchor=T0)
        end = T0 + timedelta(minutes=minutes)
        times = [t for t in itertools.islice(timing.after(T0 - timedelta(seconds=1)), 2000) if t < end]
        assert timing.missed(T0, end) == Missed(T0, times[-1], len(times))
