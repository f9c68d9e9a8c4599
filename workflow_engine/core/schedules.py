"""When a schedule fires, and what each fire time does: pure decisions over plain data.

A schedule's *timing* is a cron expression (5 fields, in an IANA time zone, correct across
daylight-saving changes: cronsim follows cron's own rules, so a time skipped by a spring-forward
fires at the first minute after the gap and an hour repeated in autumn fires once for a daily
expression) or a fixed interval anchored at the schedule's creation.

A schedule keeps a *cursor*: its first fire time not handled yet. At ``now``, the fire times from
the cursor up to ``now`` are due (:func:`due`): those at most ``catchup_window`` seconds late
start, oldest first, and so does the latest of them if it is at most ``late_after`` seconds late
(a coordinator that woke up late, not a downtime); older ones are missed. Each fire time that
starts then meets the overlap policy (:func:`overlap`), given whether the schedule's previous
execution still runs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

MAX_EVERY = 366 * 86400  # seconds: a year and a day
MIN_EVERY = 1


class Overlap(enum.StrEnum):
    SKIP = "skip"  # nothing starts while the previous execution runs
    BUFFER_ONE = "buffer_one"  # one start waits for it
    ALLOW_ALL = "allow_all"
    CANCEL_OTHER = "cancel_other"  # the running one is cancelled, the new one starts


class Action(enum.StrEnum):
    START = "started"
    SKIP = "skipped"
    BUFFER = "buffered"
    CANCEL_AND_START = "cancelled_other"


@dataclass(frozen=True)
class Timing:
    """A cron expression in ``timezone``, or every ``every`` seconds from ``anchor``."""

    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    anchor: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    def problems(self) -> list[tuple[str, str]]:
        """What is wrong with this timing, as (field, message) pairs; empty when it is sound."""
        found: list[tuple[str, str]] = []
        if (self.cron is None) == (self.every is None):
            found.append(("cron", "give exactly one of cron and every"))
        if self.cron is not None:
            if len(self.cron.split()) != 5:
                found.append(("cron", "must have 5 fields: minute hour day-of-month month day-of-week"))
            else:
                try:
                    CronSim(self.cron, datetime(2000, 1, 1))
                except CronSimError as exc:
                    found.append(("cron", f"{exc} in {self.cron!r}"))
        if self.every is not None and not (MIN_EVERY <= self.every <= MAX_EVERY):
            found.append(("every", f"must be {MIN_EVERY} to {MAX_EVERY} seconds"))
        try:
            self.zone()
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            found.append(("timezone", f"unknown time zone {self.timezone!r} (an IANA name: Europe/Paris)"))
        return found

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def after(self, moment: datetime) -> Iterator[datetime]:
        """The fire times strictly after ``moment``, in UTC, in order, without end."""
        if self.every is not None:
            step = timedelta(seconds=self.every)
            count = max(0, (moment - self.anchor) // step + 1)
            while True:
                yield self.anchor + count * step
                count += 1
        assert self.cron is not None
        local = moment.astimezone(self.zone())
        # cronsim works at minute precision from the minute after the one it is given
        for fire in CronSim(self.cron, local):
            fire_utc = fire.astimezone(UTC)
            if fire_utc > moment:
                yield fire_utc

    def first_at_or_after(self, moment: datetime) -> datetime:
        return next(self.after(moment - timedelta(microseconds=1)))

    def next_times(self, moment: datetime, count: int = 5) -> list[datetime]:
        times = self.after(moment)
        return [next(times) for _ in range(count)]


@dataclass(frozen=True)
class Due:
    """What a schedule's cursor says at ``now``: the fire times to start (oldest first), whether
    older ones were missed, and the new cursor."""

    start: list[datetime] = field(default_factory=list)
    missed_since: datetime | None = None
    cursor: datetime | None = None


def due(timing: Timing, cursor: datetime, now: datetime, catchup_window: float, late_after: float) -> Due:
    """The fire times due at ``now`` for a schedule whose first unhandled fire time is ``cursor``."""
    if cursor > now:
        return Due(cursor=cursor)
    window = timedelta(seconds=max(catchup_window, late_after))
    # fire times before the window are missed whatever happens: do not walk through them
    start_from = max(cursor, now - window)
    candidates: list[datetime] = []
    following = cursor
    for fire in timing.after(start_from - timedelta(microseconds=1)):
        if fire > now:
            following = fire
            break
        candidates.append(fire)
    catchup = timedelta(seconds=catchup_window)
    chosen = [fire for fire in candidates if now - fire <= catchup]
    if candidates and candidates[-1] not in chosen and now - candidates[-1] <= timedelta(seconds=late_after):
        chosen.append(candidates[-1])
    missed = cursor if not chosen or chosen[0] != cursor else None
    return Due(start=chosen, missed_since=missed, cursor=following)


def overlap(policy: Overlap, running: bool, buffered: bool) -> Action:
    """What one fire time does, given whether the previous execution still runs and whether a
    start already waits for it (``buffer_one``)."""
    if not running or policy is Overlap.ALLOW_ALL:
        return Action.START
    if policy is Overlap.CANCEL_OTHER:
        return Action.CANCEL_AND_START
    if policy is Overlap.BUFFER_ONE and not buffered:
        return Action.BUFFER
    return Action.SKIP


def actions(policy: Overlap, running: bool, buffered: bool, count: int) -> list[Action]:
    """What each of ``count`` fire times does, oldest first: after one starts (or is buffered),
    the later ones see it."""
    taken: list[Action] = []
    for _ in range(count):
        action = overlap(policy, running, buffered)
        taken.append(action)
        if action is Action.BUFFER:
            buffered = True
        elif action is not Action.SKIP:
            running = True
    return taken
