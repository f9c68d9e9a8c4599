"""When a schedule fires, and what each fire time does: pure decisions over plain data.

A schedule's *timing* is a cron expression (5 fields, in an IANA time zone, correct across
daylight-saving changes: cronsim follows cron's own rules, so a time skipped by a spring-forward
fires at the first minute after the gap and an hour repeated in autumn fires once for a daily
expression) or a fixed interval anchored at the schedule's creation. A schedule's first fire time is its first
one strictly after its creation (:meth:`Timing.first_fire`): ``every 30`` first fires 30 s after
it is created, as Celery beat, Temporal and Airflow intervals do (``trigger`` fires at once).

A schedule keeps a *cursor*: its first fire time not handled yet. At ``now``, the fire times from
the cursor up to ``now`` are due (:func:`due`): those at most ``catchup_window`` seconds late
start, oldest first, and so does the latest of them if it is at most ``late_after`` seconds late
(a coordinator that woke up late, not a downtime); older ones are missed. Each fire time that
starts then meets the overlap policy (:func:`overlap`), given whether the schedule's previous
execution still runs. What is shown as the next fire times is what the scheduler would start
(:func:`upcoming`), and every fire time that starts nothing says why (:func:`skip_reason`,
:class:`Missed`).
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

MAX_EVERY = 366 * 86400  # seconds: a year and a day
MIN_EVERY = 1
MAX_COUNTED = 10_000  # missed cron fire times counted one by one at most (then: "more than")


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


# what a fire time that started nothing records (besides "skipped" and a start that "failed")
MISSED = "missed"  # due while no scheduler ran, past the catch-up window
PAUSED = "paused"  # due while the schedule was paused
NOT_STARTED = frozenset({Action.SKIP.value, MISSED, PAUSED, "failed"})


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

    def first_fire(self, created: datetime) -> datetime:
        """The first fire time of a schedule created at ``created``: the first strictly after it."""
        return next(self.after(created))

    def before(self, moment: datetime) -> datetime | None:
        """The last fire time strictly before ``moment`` (None when there is none)."""
        if self.every is not None:
            step = timedelta(seconds=self.every)
            count = -((self.anchor - moment) // step) - 1  # ceil((moment - anchor) / step) - 1
            return self.anchor + count * step if count >= 0 else None
        assert self.cron is not None
        local = moment.astimezone(self.zone())
        for fire in CronSim(self.cron, local, reverse=True):
            fire_utc = fire.astimezone(UTC)
            if fire_utc < moment:
                return fire_utc
        return None  # pragma: no cover - cron expressions fire forever

    def missed(self, first: datetime, end: datetime) -> Missed | None:
        """The fire times from ``first`` (one of them) up to ``end`` (excluded), as one record."""
        last = self.before(end)
        if first >= end or last is None or last < first:
            return None
        if self.every is not None:
            return Missed(first, last, (last - first) // timedelta(seconds=self.every) + 1)
        times = self.after(first - timedelta(microseconds=1))
        for count, fire in enumerate(itertools.islice(times, MAX_COUNTED + 1)):
            if fire >= end:
                return Missed(first, last, count)
        return Missed(first, last, None)

    def next_times(self, moment: datetime, count: int = 5) -> list[datetime]:
        times = self.after(moment)
        return [next(times) for _ in range(count)]


@dataclass(frozen=True)
class Missed:
    """Consecutive fire times that started nothing, from ``first`` to ``last``: ``count`` of them
    (None: more than :data:`MAX_COUNTED`)."""

    first: datetime
    last: datetime
    count: int | None


@dataclass(frozen=True)
class Due:
    """What a schedule's cursor says at ``now``: the fire times to start (oldest first), the older
    ones missed (``missed_since`` the first of them, all of them in ``missed``), and the new
    cursor."""

    start: list[datetime] = field(default_factory=list)
    missed_since: datetime | None = None
    cursor: datetime | None = None
    missed: Missed | None = None


def due(
    timing: Timing,
    cursor: datetime,
    now: datetime,
    catchup_window: float,
    late_after: float,
    count_missed: bool = True,
) -> Due:
    """The fire times due at ``now`` for a schedule whose first unhandled fire time is ``cursor``
    (without ``count_missed``, the run of missed ones is not worked out)."""
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
    counted = missed is not None and count_missed
    run = timing.missed(cursor, chosen[0] if chosen else following) if counted else None
    return Due(start=chosen, missed_since=missed, cursor=following, missed=run)


def upcoming(
    timing: Timing, cursor: datetime, now: datetime, catchup_window: float, late_after: float, count: int = 5
) -> list[datetime]:
    """The next ``count`` fire times the scheduler starts, as it would decide at ``now``: those
    due now (possibly a moment past), then those to come from the cursor on."""
    now_due = due(timing, cursor, now, catchup_window, late_after, count_missed=False)
    times = list(now_due.start[:count])
    later = timing.after((now_due.cursor or cursor) - timedelta(microseconds=1))
    while len(times) < count:
        times.append(next(later))
    return times


def missed_reason(catchup_window: float, reached: datetime) -> str:
    """Why fire times were missed: the scheduler reached them too late."""
    return (
        f"no scheduler ran at that time; reached at {reached.isoformat()}, "
        f"past the catch-up window ({catchup_window:g} s)"
    )


def paused_reason(resumed: datetime) -> str:
    return f"the schedule was paused (resumed at {resumed.isoformat()}; paused fire times are not caught up)"


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


def skip_reason(policy: Overlap, running: Sequence[str] = ()) -> str:
    """Why a fire time was skipped under ``policy`` (``running``: the executions known to run)."""
    which = f" ({', '.join(running)})" if running else ""
    if policy is Overlap.BUFFER_ONE:  # (it skips only when a start waits already)
        return f"overlap buffer_one: the previous execution{which} still ran and a start already waited"
    return f"overlap {policy.value}: the previous execution{which} still ran"


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
