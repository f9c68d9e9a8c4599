"""Barrier arrivals: when a step's success only counts toward joins, and what counting changes:
one rule, as data.

A success of a step whose every edge is unconditional and enters a join
(:func:`~workflow_engine.core.planner.arrival_joins`) may do nothing but count: the step is
resolved, one step fewer is active, and each join waits for one predecessor fewer. Whether it
does depends on the execution's row when the outcome is recorded, which workers finishing
sibling steps change concurrently. So the store applies counting in one statement that moves
the counters on from the locked row as it is, and only if :data:`ARRIVAL` holds on that row:
the statement is given this guard's thresholds and changes as parameters and holds nothing
else (``store/arrivals.py``: each counter plus its change, compared with its bound), and the
decision core is held to them by a property test (on any row where the guard holds, the full
decision changes exactly what :meth:`ArrivalGuard.counted` says, and reads nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workflow_engine.core.states import ExecutionMode, ExecutionStatus

Barriers = Mapping[str, list[int]]  # join: [predecessors still to resolve, live edges so far]


@dataclass(frozen=True, slots=True)
class ArrivalGuard:
    status: str = ExecutionStatus.RUNNING  # a paused or waiting execution decides more
    mode: str = ExecutionMode.AUTO  # step mode holds back what becomes ready
    others_active: int = 1  # steps still active besides this one (the last one settles)
    left_after: int = 1  # steps unresolved after this one (else the workflow completes)
    waiting_after: int = 1  # predecessors each join waits for after this one (else it is due)
    # what counting changes: the step is active no more and resolved; each join waits for one
    # predecessor fewer and has one live edge more (its edge from the step is unconditional)
    active_delta: int = -1
    resolved_delta: int = 1
    waiting_delta: int = -1
    live_delta: int = 1

    @staticmethod
    def waiting_for(barriers: Barriers | None, join: str, degree: int) -> int:
        """How many predecessors ``join`` (of in-degree ``degree``) still waits for."""
        counter = (barriers or {}).get(join)
        return degree if counter is None else counter[0]

    def holds(
        self,
        status: str,
        mode: str,
        active: int,
        resolved: int,
        total: int,
        barriers: Barriers | None,
        joins: Mapping[str, int],
    ) -> bool:
        """Whether a success that can only count toward ``joins`` (name: in-degree) only counts,
        on an execution's row with these values."""
        waiting = self.waiting_delta
        return (
            status == self.status
            and mode == self.mode
            and active + self.active_delta >= self.others_active
            and total - (resolved + self.resolved_delta) >= self.left_after
            and all(
                self.waiting_for(barriers, j, d) + waiting >= self.waiting_after for j, d in joins.items()
            )
        )

    def counted(
        self, active: int, resolved: int, barriers: Barriers | None, joins: Mapping[str, int]
    ) -> tuple[int, int, dict[str, list[int]]]:
        """The counters and barriers after counting the success (each join's edge from the step is
        live: it is unconditional)."""
        moved = dict(barriers or {})
        for join, degree in joins.items():
            live = (barriers or {}).get(join, [degree, 0])[1]
            moved[join] = [
                self.waiting_for(barriers, join, degree) + self.waiting_delta,
                live + self.live_delta,
            ]
        return active + self.active_delta, resolved + self.resolved_delta, moved


ARRIVAL = ArrivalGuard()
