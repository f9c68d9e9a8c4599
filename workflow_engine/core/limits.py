"""Concurrency limits and rate limits, pure: parsing them, the key an execution or an attempt is
counted under, and what an execution over its workflow's limit does.

A concurrency limit caps the executions of a workflow (or of one value of a key expression over
its input) that run at once; a rate limit caps how often a step's agent starts across the whole
fleet. The store counts; these functions decide.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|m|h)\s*$")
PERIODS = {"s": 1, "m": 60, "h": 3600}
MAX_KEY = 255


class Strategy(enum.StrEnum):
    QUEUE = "queue"  # waits, initialized, and starts oldest first when a slot frees
    CANCEL_NEWEST = "cancel_newest"  # the new one is cancelled at once
    CANCEL_IN_PROGRESS = "cancel_in_progress"  # the oldest running one is cancelled


class Admission(enum.StrEnum):
    START = "start"
    QUEUE = "queue"
    CANCEL = "cancel"  # the new one
    CANCEL_OLDEST = "cancel_oldest"  # and the new one waits for the slot that frees


def admit(strategy: Strategy, running: int, max_running: int) -> Admission:
    """What a new execution does when ``running`` executions hold its key's slots."""
    if running < max_running:
        return Admission.START
    if strategy is Strategy.CANCEL_NEWEST:
        return Admission.CANCEL
    if strategy is Strategy.CANCEL_IN_PROGRESS:
        return Admission.CANCEL_OLDEST
    return Admission.QUEUE


def free_slots(running: int, max_running: int) -> int:
    return max(0, max_running - running)


def slot_key(scope: str, value: Any = None, keyed: bool = False) -> str:
    """The key an execution (or an attempt) is counted under: ``scope`` (a workflow's name, a
    step) alone, or with the JSON of the key expression's value; long ones are hashed."""
    if not keyed:
        return scope
    text = f"{scope}={json.dumps(value, sort_keys=True, separators=(',', ':'), default=str)}"
    if len(text) <= MAX_KEY:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{text[: MAX_KEY - len(digest) - 1]}#{digest}"


@dataclass(frozen=True)
class Rate:
    """At most ``count`` starts per ``period`` seconds."""

    count: int
    period: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"100/m"``, ``"5/s"``, ``"1000/h"``; anything else is a ``ValueError`` saying so."""
        match = RATE.match(text) if isinstance(text, str) else None
        if match is None or int(match.group(1)) < 1:
            raise ValueError(f"{text!r} is not a rate: a count of 1 or more per s, m or h, e.g. '100/m'")
        return cls(int(match.group(1)), PERIODS[match.group(2)])

    def __str__(self) -> str:
        unit = {seconds: name for name, seconds in PERIODS.items()}[self.period]
        return f"{self.count}/{unit}"
