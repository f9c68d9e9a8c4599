"""When a step's success only counts toward joins, and what counting changes: one rule, as data.

A success of a step whose every edge is unconditional and enters a join
(:func:`~workflow_engine.core.planner.counted_joins`) may do nothing but count: the step is
resolved, one step fewer is active, and each join waits for one predecessor fewer. Whether it
does depends on the execution's row when the outcome is recorded, which workers finishing
sibling steps change concurrently. So the store applies counting in one statement that moves
the counters on from the locked row as it is, and only if :data:`COUNTING` holds on that row:
the statement's condition is rendered from these values (``store/counted.py``), and the
decision core is held to them by a property test (on any row where the guard holds, the full
decision changes exactly what :meth:`CountingGuard.counted` says, and reads nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workflow_engine.core.states import ExecutionMode, ExecutionStatus

Barriers = Mapping[str, list[int]]  # join: [predecessors still to resolve, live edges so far]


@dataclass(frozen=True, slots=True)
class CountingGuard:
    status: str = ExecutionStatus.RUNNING  # a paused or waiting execution decides more
    mode: str = ExecutionMode.AUTO  # step mode holds back what becomes ready
    others_active: int = 1  # steps still active besides this one (the last one settles)
    left_after: int = 1  # steps unresolved after this one (else the workflow completes)
    waiting_after: int = 1  # predecessors each join waits for after this one (else it is due)

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
        return (
            status == self.status
            and mode == self.mode
            and active - 1 >= self.others_active
            and total - resolved - 1 >= self.left_after
            and all(self.waiting_for(barriers, j, d) - 1 >= self.waiting_after for j, d in joins.items())
        )

    def counted(
        self, active: int, resolved: int, barriers: Barriers | None, joins: Mapping[str, int]
    ) -> tuple[int, int, dict[str, list[int]]]:
        """The counters and barriers after counting the success (each join's edge from the step is
        live: it is unconditional)."""
        moved = dict(barriers or {})
        for join, degree in joins.items():
            live = (barriers or {}).get(join, [degree, 0])[1]
            moved[join] = [self.waiting_for(barriers, join, degree) - 1, live + 1]
        return active - 1, resolved + 1, moved


COUNTING = CountingGuard()
