"""What the coordinator asks of a store to claim attempts and record outcomes: the seam.

:class:`OutcomeStore` is that seam as a Protocol. SQLite's store
(:class:`~workflow_engine.store.repository.Store`) and PostgreSQL's
(:class:`~workflow_engine.store.postgres_store.PostgresStore`) both implement it, and mypy holds
both to it (:mod:`workflow_engine.store.opening`). Where a store has no one-round-trip way to do
something (SQLite: an arrival in one statement, an optimistic write), it answers
:data:`UNSUPPORTED`; a guard that does not hold is :class:`GuardFailed`; neither writes
anything, and the caller applies the general way.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from sqlalchemy.engine import Connection

from workflow_engine.clock import Clock
from workflow_engine.store.optimistic import OptimisticWrite
from workflow_engine.store.records import ClaimedRun
from workflow_engine.store.transaction import Tx


@dataclass(frozen=True, slots=True)
class Take:
    """What to do with a carried run once an outcome is recorded: ``how`` is "run" (in place,
    by the worker that reported), "send" (published) or "none"."""

    how: str = "none"
    task_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Arrival:
    """A success that only counts toward ``joins`` (name: in-degree): the attempt's values for
    its run, the execution's new checkpoint, and the run's event."""

    execution_id: str
    run_id: int
    worker: str
    attempt: Mapping[str, Any]
    joins: Mapping[str, int]
    checkpoint: Any
    event: Mapping[str, Any]


class Unsupported:
    """This store has no one-round-trip way to do it: nothing was written."""

    def __repr__(self) -> str:
        return "UNSUPPORTED"


UNSUPPORTED: Final = Unsupported()


@dataclass(frozen=True, slots=True)
class Arrived:
    """An arrival recorded in one statement; the carried run it took (id and row), if any."""

    taken: tuple[int, dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class GuardFailed:
    """The guard of a one-statement arrival did not hold on the row as it is: nothing was
    written."""


ArrivalAnswer = Arrived | GuardFailed | Unsupported


class OutcomeStore(Protocol):
    """Claiming attempts and recording outcomes, as the coordinator's recorder asks for them."""

    @property
    def clock(self) -> Clock: ...

    def claim(
        self, run_id: int, worker: str, task_id: str | None = None, at: datetime | None = None
    ) -> ClaimedRun | None:
        """Take a queued attempt for ``worker`` (None: no longer there to take)."""
        ...

    def transaction(self) -> AbstractContextManager[Tx]: ...

    def pipelined(self, now: datetime | None = None) -> AbstractContextManager[Tx]:
        """A write transaction for a step's outcome, dated ``now``."""
        ...

    def optimistic(self) -> AbstractContextManager[OptimisticWrite | Unsupported]:
        """An optimistic write, guarded by the execution's revision."""
        ...

    def record_arrival(self, arrival: Arrival, take: Take) -> ArrivalAnswer:
        """A barrier arrival in one statement, if its guard holds on the row as it is."""
        ...

    def record_item_arrival(self, arrival: Arrival, step: str, take: Take) -> ArrivalAnswer:
        """A map item's arrival in one statement, if its guard holds on the row as it is."""
        ...

    def reading(self) -> AbstractContextManager[Connection]: ...

    def capacity(self, queue: str, seen_since: datetime) -> int:
        """How many steps the workers heartbeating since ``seen_since`` run at once."""
        ...
