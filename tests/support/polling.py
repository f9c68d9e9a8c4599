"""Bounded polling: wait for a state, never for a fixed time. The one wait loop of the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimedOut(AssertionError):
    """What a bounded wait was for did not happen within its timeout."""


def poll(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.1,
    explain: Callable[[], object] | None = None,
) -> T:
    """``probe()``'s first truthy answer, or :class:`TimedOut` naming ``what`` after ``timeout``
    (with ``explain()``, where the state was left, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            found = f":\n{explain()}" if explain is not None else ""
            raise TimedOut(f"timed out after {timeout} s waiting for {what}{found}")
        time.sleep(interval)
