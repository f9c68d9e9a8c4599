"""A map step's items, counted: pure rules.

A map step runs once per item of a list known at run time. Its own run stands for the step;
each item's attempts are runs of the step with the item's index. The execution's row keeps, for
each map step, a small :data:`Progress`: how many items there are, how many succeeded, failed
for good, and are admitted (queued, retrying or running). An item's outcome moves these counts
by one (O(1), whatever the number of items); the results are assembled once, when every item
has resolved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflow_engine.core.states import ExecutionStatus, StepStatus

S = StepStatus
Progress = dict[str, int]
ADMITTED = frozenset({S.QUEUED, S.RETRYING, S.RUNNING})
PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def tolerated(tolerance: int | str, total: int) -> int:
    """How many of ``total`` items may fail: a count, or a percentage of them (rounded down)."""
    if isinstance(tolerance, int):
        return tolerance
    match = PERCENT.match(tolerance)
    if match is None:
        raise ValueError(f"{tolerance!r} is not a count or a percentage")
    return int(total * float(match.group(1)) / 100)


def items_problem(value: Any, max_items: int) -> str | None:
    """Why ``value`` cannot be a map's items (None: it can)."""
    if not isinstance(value, list):
        kind = "null" if value is None else type(value).__name__
        return f"items gave {kind}, not a list"
    if len(value) > max_items:
        return f"items gave {len(value)} elements, more than the {max_items} allowed (WFE_MAP_MAX_ITEMS)"
    return None


def start(total: int, attempt: int, opened_ms: int) -> Progress:
    """A map's counts when it opens with ``total`` items."""
    return {
        "total": total,
        "succeeded": 0,
        "failed": 0,
        "running": 0,
        "cancelled": 0,
        "attempt": attempt,
        "opened_ms": opened_ms,
    }


def pending(progress: Mapping[str, int]) -> int:
    """Items not yet admitted (or held back by a pause)."""
    resolved = progress["succeeded"] + progress["failed"] + progress.get("cancelled", 0)
    return progress["total"] - resolved - progress["running"]


def admissible(progress: Mapping[str, int], window: int) -> int:
    """How many more items may be admitted now, at most ``window`` at once."""
    return max(0, min(window - progress["running"], pending(progress)))


def moved(progress: Progress, previous: str | None, new: str) -> None:
    """An item's run moved from ``previous`` (None: a new run) to ``new``: keep the count of
    admitted (and of cancelled) items right."""
    progress["running"] += int(new in ADMITTED) - int(previous in ADMITTED)
    if new == S.CANCELLED and previous != S.CANCELLED:
        progress["cancelled"] = progress.get("cancelled", 0) + 1


def resolved(progress: Mapping[str, int]) -> bool:
    return progress["succeeded"] + progress["failed"] >= progress["total"]


def over_tolerance(progress: Mapping[str, int], tolerance: int | str) -> bool:
    """Whether more items failed than the step tolerates (the step fails at once then)."""
    return progress["failed"] > tolerated(tolerance, progress["total"])


def results(total: int, outputs: Mapping[int, Any]) -> dict[str, list[Any]]:
    """A map's output: the items' outputs in item order (None for a failed item), and the
    indices of the items that failed."""
    return {
        "results": [outputs.get(index) for index in range(total)],
        "failed": [index for index in range(total) if index not in outputs],
    }


@dataclass(frozen=True, slots=True)
class ItemArrivalGuard:
    """When an item's success only counts: the execution runs, no item of the map waits to be
    admitted (so none is admitted now), and items are left after this one (so the map does not
    conclude). The store applies it in one statement rendered from these values
    (``store/arrivals.py``); a property test holds the decision core to it."""

    status: str = ExecutionStatus.RUNNING
    pending: int = 0  # items waiting to be admitted
    left_after: int = 1  # items unresolved after this one
    # what counting changes: the item is running no more and succeeded
    succeeded_delta: int = 1
    running_delta: int = -1

    def holds(self, status: str, progress: Mapping[str, int]) -> bool:
        left = progress["total"] - (progress["succeeded"] + self.succeeded_delta) - progress["failed"]
        return status == self.status and pending(progress) == self.pending and left >= self.left_after

    def counted(self, progress: Mapping[str, int]) -> Progress:
        """The map's counts after counting the success."""
        succeeded = progress["succeeded"] + self.succeeded_delta
        return {**progress, "succeeded": succeeded, "running": progress["running"] + self.running_delta}


ITEM_ARRIVAL = ItemArrivalGuard()


def summary(progress: Mapping[str, int]) -> dict[str, int]:
    """What a user is shown of a map: done, failed, running, pending and total."""
    return {
        "total": progress["total"],
        "done": progress["succeeded"],
        "failed": progress["failed"],
        "running": progress["running"],
        "pending": pending(progress),
        "cancelled": progress.get("cancelled", 0),
    }
