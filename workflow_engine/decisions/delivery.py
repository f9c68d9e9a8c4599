"""How a run reaches a worker: decided here, and only here.

A run reaches a worker in one of two ways:

- **by message**: the unit that creates the run writes it as published, and the message goes to
  the broker once the transaction has committed (the outbox); a message lost on the way is
  published again by the reconciler;
- **in place**: the worker that has just recorded an outcome runs the next step itself, in the
  same Celery task, without a message (at most ``inline_steps`` in a row; a step with a timeout
  or a queue of its own always goes by message, since a time limit and a queue belong to a task).

A single next step goes in place when the reporting worker may run it. A fan-out wider than the
steps the live workers can run at once (their *capacity*) sends that many branches by message,
one of them in place instead when the reporting worker may, and *carries* the rest: they have no
message of their own; each worker that records a branch of the fan-out hands on one carried
sibling (:func:`hand_on`), running it in place when it may and publishing it otherwise, so a
fan-out of any width costs a few messages. A carried run counts as handed over; the reconciler
publishes one whose carriers seem gone.

The rules are the plain functions :func:`may_run_in_place`, :func:`route` and :func:`hand_on`;
:func:`conclude` and :func:`took` apply them to a decision (a
:class:`~workflow_engine.decisions.unit.Unit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from workflow_engine.core.states import ExecutionStatus, StepStatus
from workflow_engine.decisions.dispatch import Dispatch
from workflow_engine.definitions.model import WORKER_STEPS, StepDefinition, StepType
from workflow_engine.store.records import run_in_place_values

if TYPE_CHECKING:
    from workflow_engine.decisions.unit import Unit

T = TypeVar("T")
E = ExecutionStatus
Handing = Literal["run", "send"]


def may_run_in_place(step: StepDefinition, status: str, item: bool = False) -> bool:
    """Whether a worker may run a run of ``step`` in ``status`` (an ``item`` of a map step)
    without a message of its own: a queued agent step (or an item of an agent map) of the
    default queue, without a timeout or a rate limit (checked when its message is taken)."""
    agent = step.type in WORKER_STEPS or (item and step.type is StepType.MAP and step.agent is not None)
    plain = not step.timeout and not step.queue and step.rate_limit is None
    return status == StepStatus.QUEUED and agent and plain


@dataclass(frozen=True)
class Route(Generic[T]):
    """How the runs a unit hands out go: ``in_place`` is run by the reporting worker, each of
    ``carried`` waits for a sibling's worker, every other one goes by message."""

    in_place: T | None = None
    carried: list[T] = field(default_factory=list)


def route(
    outgoing: Sequence[T],
    movable: Callable[[T], bool],
    worker_may_run: bool,
    capacity: Callable[[], int],
    carrying: bool,
) -> Route[T]:
    """How ``outgoing`` (the runs a unit publishes) reach workers. ``movable`` tells the runs a
    worker may run in place; ``worker_may_run``, whether the reporting worker may run one; ``capacity``
    (asked only for a fan-out), how many steps the live workers run at once (0: unknown);
    ``carrying``, whether runs may be carried at all."""
    if not worker_may_run and (len(outgoing) < 2 or not carrying):
        return Route()  # (nothing may run in place, and carrying takes two runs at least)
    candidates = [run for run in outgoing if movable(run)]
    if worker_may_run and len(outgoing) == 1 and candidates:
        return Route(in_place=candidates[0])
    if len(candidates) < 2 or not carrying:
        return Route()
    sent = capacity()
    if not 0 < sent < len(candidates):
        return Route()
    if worker_may_run:
        return Route(in_place=candidates[0], carried=candidates[sent:])
    return Route(carried=candidates[sent:])


def hand_on(carrier: bool, worker_may_run: bool, busy: bool) -> Handing | None:
    """What the worker recording a branch does with one carried sibling: nothing unless the
    branch belongs to a fan-out that may carry (``carrier``); run it in place when the worker
    may (``worker_may_run``) and runs nothing else in place already (``busy``); publish it otherwise."""
    if not carrier:
        return None
    return "run" if worker_may_run and not busy else "send"


def conclude(unit: Unit) -> None:
    """The decision is made: how its new runs reach the workers (see :func:`route`), and what is
    handed on. Every run goes by message when none may run in place or be carried, and nothing
    is handed on unless the step reporting is a branch whose siblings may be carried."""
    if unit.status != E.RUNNING:
        return
    worker_may_run = unit.in_place is not None and unit.continued is None
    # (fewer than two new runs and none to run in place: route() would send each by message)
    may_carry = unit.in_place is not None or unit.settings.inline_steps
    if worker_may_run or (may_carry and len(unit.new) > 1):
        decided = route(
            [row for row in unit.new if row["published_at"] is not None],
            lambda row: may_run_in_place(
                unit.definition.steps_by_name[row["step_name"]], row["status"], row["item_index"] is not None
            ),
            worker_may_run=worker_may_run,
            capacity=unit.facts.workers_capacity,
            carrying=bool(unit.settings.inline_steps),
        )
        if decided.in_place is not None:
            _run_in_place(unit, decided.in_place)
        for row in decided.carried:
            row["carried"] = True
    if unit.carrier:
        take_carried(unit)


def _run_in_place(unit: Unit, row: dict[str, Any]) -> None:
    assert unit.in_place is not None
    worker, carrier = unit.in_place
    row.update(run_in_place_values(worker, carrier, unit.now))  # (its input stays its own: see Unit.inserted)
    unit.in_place_event(row, worker)


def take_carried(unit: Unit) -> None:
    """A branch of a fan-out reported: hand on one of its carried siblings, if any is left
    (:func:`hand_on`). Not when ``unit`` carried runs itself: the fan-out's own
    messages carry those. Which sibling is the store's to find (:func:`took` hears which)."""
    carrier = unit.carrier and unit.status == E.RUNNING and not any(row["carried"] for row in unit.new)
    busy = unit.continued is not None or any(row["worker"] is not None for row in unit.new)
    how = hand_on(carrier, worker_may_run=unit.in_place is not None, busy=busy)
    if how is not None:
        unit.take = unit.in_place if how == "run" and unit.in_place is not None else (None, None)


def took(unit: Unit, taken: tuple[int, dict[str, Any]] | None) -> None:
    """The store took the carried run ``taken`` (id and row) as ``unit.take`` said, or none."""
    if taken is None or unit.take is None:
        return
    run_id, row = taken
    worker = unit.take[0]
    if worker is None:
        step = unit.definition.steps_by_name[row["step_name"]]
        workflow, index = unit.record.workflow_name, row.get("item_index")
        unit.dispatches.append(Dispatch.of(step, run_id, unit.id, workflow, row["attempt"], None, index))
        return
    unit.continued = (run_id, row)
    unit.in_place_event(row, worker)
