"""Quotas: how much one owner may ask of the engine, decided over plain counts.

Every rule here is a function of what was counted (by the store) and the limits (from the
settings); it answers with the refusal to raise, or None. Where they are applied: a start in
``Coordinator.start`` (every start passes there: API, CLI, Python, Celery, schedules' fires),
a signal in ``Coordinator.signal``, a schedule in ``Schedules.create``, a step's output and
checkpoint in the worker. The deployment's own work (the system user) is not limited.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from workflow_engine.errors import InputError, Problem, TooManyAttempts

MINUTE = timedelta(seconds=60)
OUTPUT_TOO_LARGE = "OUTPUT_TOO_LARGE"
IN_FLIGHT_RETRY_AFTER = 5  # (seconds: executions end at their own pace; a hint, not a promise)


class QuotaExceeded(TooManyAttempts):
    """A quota refused the request: try again in ``retry_after`` seconds (429)."""


Refusal = InputError | QuotaExceeded


@dataclass(frozen=True)
class Quotas:
    """The limits (0: none), from the settings."""

    in_flight: int = 0
    starts_per_minute: int = 0
    signals_kept: int = 0
    signal_bytes: int = 0
    schedules: int = 0
    schedule_min_interval: int = 1
    input_bytes: int = 0
    output_bytes: int = 0

    @classmethod
    def of(cls, settings: Any) -> Quotas:
        return cls(
            in_flight=settings.quota_executions_in_flight,
            starts_per_minute=settings.quota_starts_per_minute,
            signals_kept=settings.quota_signals_kept,
            signal_bytes=settings.quota_signal_bytes,
            schedules=settings.quota_schedules,
            schedule_min_interval=settings.schedule_min_interval,
            input_bytes=settings.max_input_bytes,
            output_bytes=settings.max_output_bytes,
        )

    @property
    def limits_starts(self) -> bool:
        """Whether a start needs anything counted."""
        return bool(self.in_flight or self.starts_per_minute)


@dataclass(frozen=True)
class StartUsage:
    """What an owner has going, counted up to the limits: executions not ended (at most
    ``in_flight`` counted), and the start time of the ``starts_per_minute``-th newest start of
    the last minute (None: fewer than that many)."""

    in_flight: int
    nth_recent_start: datetime | None


def json_size(value: Any) -> int:
    """The bytes ``value`` takes as stored JSON (compact, UTF-8)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode("utf-8", "surrogatepass"))  # (a lone surrogate is refused elsewhere)


def start_refusal(usage: StartUsage, quotas: Quotas, now: datetime) -> QuotaExceeded | None:
    """Why one more start is refused, or None: too many executions in flight, or too many starts
    within the last minute (then Retry-After is when the oldest of them leaves the minute)."""
    if quotas.in_flight and usage.in_flight >= quotas.in_flight:
        return QuotaExceeded(
            f"quota: {usage.in_flight} executions of this owner have not ended (at most "
            f"{quotas.in_flight}, WFE_QUOTA_EXECUTIONS_IN_FLIGHT); start more once some end",
            IN_FLIGHT_RETRY_AFTER,
        )
    if quotas.starts_per_minute and usage.nth_recent_start is not None:
        wait = (usage.nth_recent_start + MINUTE - now).total_seconds()
        if wait > 0:
            return QuotaExceeded(
                f"quota: {quotas.starts_per_minute} executions started by this owner within a minute "
                f"(at most that many, WFE_QUOTA_STARTS_PER_MINUTE); try again in {math.ceil(wait)} s",
                max(1, math.ceil(wait)),
            )
    return None


def size_refusal(what: str, size: int, limit: int, setting: str) -> InputError | None:
    """Data of ``size`` bytes stored as ``what``, refused over ``limit`` (422), or None."""
    if limit and size > limit:
        return InputError(what, [Problem("", f"takes {size} bytes stored; at most {limit} ({setting})")])
    return None


def signal_refusal(kept: int, kept_bytes: int, size: int, quotas: Quotas) -> QuotaExceeded | None:
    """Why one more kept signal of ``size`` bytes is refused for an execution that keeps ``kept``
    signals of ``kept_bytes`` bytes already, or None."""
    if quotas.signals_kept and kept >= quotas.signals_kept:
        return QuotaExceeded(
            f"quota: this execution keeps {kept} signals no step has taken yet (at most "
            f"{quotas.signals_kept}, WFE_QUOTA_SIGNALS_KEPT)",
            IN_FLIGHT_RETRY_AFTER,
        )
    if quotas.signal_bytes and kept_bytes + size > quotas.signal_bytes:
        return QuotaExceeded(
            f"quota: the signals this execution keeps would take {kept_bytes + size} bytes (at most "
            f"{quotas.signal_bytes}, WFE_QUOTA_SIGNAL_BYTES)",
            IN_FLIGHT_RETRY_AFTER,
        )
    return None


def schedule_refusal(owned: int, every: int | None, quotas: Quotas) -> Refusal | None:
    """Why one more schedule (firing ``every`` seconds, or on a cron) is refused for an owner of
    ``owned`` schedules, or None."""
    if every is not None and every < quotas.schedule_min_interval:
        return InputError(
            "schedule",
            [
                Problem(
                    "every",
                    f"at least {quotas.schedule_min_interval} seconds (WFE_SCHEDULE_MIN_INTERVAL)",
                )
            ],
        )
    if quotas.schedules and owned >= quotas.schedules:
        return QuotaExceeded(
            f"quota: this owner has {owned} schedules (at most {quotas.schedules}, "
            "WFE_QUOTA_SCHEDULES); delete one first",
            IN_FLIGHT_RETRY_AFTER,
        )
    return None
