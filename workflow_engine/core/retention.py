"""What a purge may delete, pure: ages written as ``30d``, ``12h``, ``90m`` or ``3600s``, and the
statuses an execution may be purged in (terminal ones only: running, waiting and paused
executions are never purged)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from workflow_engine.core.states import TERMINAL_EXECUTION

AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_AGE_DAYS = 100 * 366
PURGEABLE = tuple(sorted(TERMINAL_EXECUTION))


def parse_age(text: str) -> timedelta:
    """``"30d"`` → 30 days; anything else is a ``ValueError`` saying what an age is."""
    match = AGE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not an age: a whole number of s, m, h, d or w, e.g. '30d'")
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds > MAX_AGE_DAYS * 86400:
        raise ValueError(f"{text!r} is more than {MAX_AGE_DAYS} days")
    return timedelta(seconds=seconds)


def purgeable(statuses: Iterable[str] | None) -> tuple[str, ...]:
    """The statuses asked for, checked: each must be terminal (default: every terminal one)."""
    if statuses is None:
        return PURGEABLE
    asked = tuple(dict.fromkeys(s.strip() for s in statuses if s.strip()))
    wrong = [s for s in asked if s not in TERMINAL_EXECUTION]
    if wrong or not asked:
        raise ValueError(
            f"only ended executions are purged: statuses must be among {', '.join(PURGEABLE)}"
            + (f" (not {', '.join(wrong)})" if wrong else "")
        )
    return asked
