"""The schedule rules, pure: fire times (cron in a time zone across daylight-saving changes,
fixed intervals), which are due after a downtime, and what each does under the overlap policy."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.core.schedules import Action, Overlap, Timing, actions, due, overlap

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_cron_fires_in_its_time_zone() -> None:
    nightly = Timing(cron="0 2 * * *", timezone="Europe/Paris")
    # 02:00 in Paris is 01:00 UTC in winter
    assert nightly.next_times(utc(2030, 1, 1, 12), 2) == [utc(2030, 1, 2, 1), utc(2030, 1, 3, 1)]


def test_a_time_skipped_by_spring_forward_fires_once_after_the_gap() -> None:
    # Paris, 2027-03-28: 02:00 jumps to 03:00, so 02:30 does not exist that day
    daily = Timing(cron="30 2 * * *", timezone="Europe/Paris")
    times = daily.next_times(utc(2027, 3, 26, 12), 3)
    # 27th 02:30+01:00, then the first minute after the gap (03:00+02:00), then 02:30+02:00
    assert times == [utc(2027, 3, 27, 1, 30), utc(2027, 3, 28, 1, 0), utc(2027, 3, 29, 0, 30)]


def test_an_hour_repeated_in_autumn_fires_once_for_a_daily_expression() -> None:
    # Paris, 2026-10-25: 03:00 goes back to 02:00, so 02:30 happens twice
    daily = Timing(cron="30 2 * * *", timezone="Europe/Paris")
    times = daily.next_times(utc(2026, 10, 24, 12), 2)
    assert times == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_an_hourly_expression_fires_every_real_hour_across_the_autumn_change() -> None:
    hourly = Timing(cron="0 * * * *", timezone="Europe/Paris")
    times = hourly.next_times(utc(2026, 10, 24, 22, 30), 4)
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(hours=1)] * 3


def test_an_interval_counts_from_its_anchor() -> None:
    every = Timing(every=30, anchor=T0 + timedelta(seconds=7))
    assert every.next_times(T0, 3) == [T0 + timedelta(seconds=s) for s in (7, 37, 67)]
    assert every.first_at_or_after(T0 + timedelta(seconds=37)) == T0 + timedelta(seconds=37)


@pytest.mark.parametrize(
    ("timing", "where"),
    [
        (Timing(), "cron"),
        (Timing(cron="* * * * *", every=5), "cron"),
        (Timing(cron="0 2 * *"), "cron"),
        (Timing(cron="0 2 * * * *"), "cron"),
        (Timing(cron="61 2 * * *"), "cron"),
        (Timing(every=0), "every"),
        (Timing(every=5, timezone="Mars/Olympus"), "timezone"),
        (Timing(every=5, timezone="../etc/passwd"), "timezone"),
    ],
)
def test_a_timing_that_cannot_fire_says_why(timing: Timing, where: str) -> None:
    assert where in [field for field, _ in timing.problems()]


def test_sound_timings_have_no_problems() -> None:
    assert Timing(cron="*/5 9-17 * * mon-fri", timezone="America/New_York").problems() == []
    assert Timing(every=1).problems() == []


EVERY_MINUTE = Timing(every=60, anchor=T0)


def test_a_fire_time_due_on_time_starts() -> None:
    result = due(EVERY_MINUTE, T0, T0 + timedelta(seconds=0.2), catchup_window=0, late_after=60)
    assert result.start == [T0] and result.cursor == T0 + timedelta(minutes=1) and result.missed_since is None


def test_nothing_is_due_before_the_cursor() -> None:
    result = due(EVERY_MINUTE, T0, T0 - timedelta(seconds=1), catchup_window=0, late_after=60)
    assert result.start == [] and result.cursor == T0


def test_after_a_downtime_without_catch_up_only_the_latest_fire_time_starts_if_barely_late() -> None:
    now = T0 + timedelta(minutes=10, seconds=5)
    result = due(EVERY_MINUTE, T0, now, catchup_window=0, late_after=60)
    assert result.start == [T0 + timedelta(minutes=10)]
    assert result.missed_since == T0 and result.cursor == T0 + timedelta(minutes=11)


def test_a_fire_time_later_than_late_after_is_missed() -> None:
    daily = Timing(cron="0 2 * * *")
    result = due(daily, utc(2030, 1, 1, 2), utc(2030, 1, 1, 5), catchup_window=0, late_after=60)
    assert result.start == [] and result.missed_since == utc(2030, 1, 1, 2)
    assert result.cursor == utc(2030, 1, 2, 2)


def test_fire_times_within_the_catch_up_window_start_once_each_oldest_first() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)
    result = due(EVERY_MINUTE, T0, now, catchup_window=200, late_after=60)
    # 10:30 late at most 200 s: fire times 8, 9 and 10 minutes in
    assert result.start == [T0 + timedelta(minutes=m) for m in (8, 9, 10)]
    assert result.missed_since == T0


def test_a_long_downtime_does_not_walk_every_missed_fire_time() -> None:
    every_second = Timing(every=1, anchor=T0)
    now = T0 + timedelta(days=400)
    result = due(every_second, T0, now, catchup_window=2, late_after=1)
    assert result.start == [now - timedelta(seconds=s) for s in (2, 1, 0)]


@given(
    every=st.integers(1, 3600),
    behind=st.floats(0, 50_000),
    window=st.integers(0, 5000),
    late=st.floats(0, 120),
)
def test_due_fire_times_are_real_ordered_in_the_past_and_within_bounds(
    every: int, behind: float, window: int, late: float
) -> None:
    timing = Timing(every=every, anchor=T0)
    now = T0 + timedelta(seconds=behind)
    result = due(timing, T0, now, catchup_window=window, late_after=late)
    assert result.start == sorted(set(result.start))
    assert all(T0 <= t <= now and (t - T0).total_seconds() % every == 0 for t in result.start)
    # (in the datetimes' own precision, microseconds, as the rule compares them)
    assert all(now - t <= timedelta(seconds=max(window, late)) for t in result.start)
    assert result.cursor is not None and result.cursor > now
    assert result.cursor - timedelta(seconds=every) <= now
    # every fire time within the catch-up window starts
    fire_times = itertools.takewhile(lambda t: t <= now, timing.after(now - timedelta(seconds=window + 1)))
    assert all(t in result.start for t in fire_times if t >= T0 and now - t <= timedelta(seconds=window))


@pytest.mark.parametrize(
    ("policy", "running", "buffered", "expected"),
    [
        (Overlap.SKIP, False, False, Action.START),
        (Overlap.SKIP, True, False, Action.SKIP),
        (Overlap.BUFFER_ONE, True, False, Action.BUFFER),
        (Overlap.BUFFER_ONE, True, True, Action.SKIP),
        (Overlap.ALLOW_ALL, True, True, Action.START),
        (Overlap.CANCEL_OTHER, True, False, Action.CANCEL_AND_START),
        (Overlap.CANCEL_OTHER, False, False, Action.START),
    ],
)
def test_overlap_decides_what_a_fire_time_does(
    policy: Overlap, running: bool, buffered: bool, expected: Action
) -> None:
    assert overlap(policy, running, buffered) is expected


def test_several_due_fire_times_see_the_ones_before_them() -> None:
    assert actions(Overlap.SKIP, False, False, 3) == [Action.START, Action.SKIP, Action.SKIP]
    assert actions(Overlap.BUFFER_ONE, False, False, 3) == [Action.START, Action.BUFFER, Action.SKIP]
    assert actions(Overlap.ALLOW_ALL, True, False, 2) == [Action.START, Action.START]
    assert actions(Overlap.CANCEL_OTHER, False, False, 2) == [Action.START, Action.CANCEL_AND_START]
