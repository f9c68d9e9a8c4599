"""How a decision's new runs leave it: by message, in place on the reporting worker, or carried
for the workers that record their siblings (the rules are :mod:`~workflow_engine.coordinator.delivery`'s;
this applies them to a :class:`~workflow_engine.coordinator.unit.Unit`)."""

from __future__ import annotations

from typing import Any

from workflow_engine.coordinator import delivery
from workflow_engine.coordinator.unit import Unit
from workflow_engine.core.states import ExecutionStatus
from workflow_engine.store.rows import in_place

E = ExecutionStatus


def conclude(unit: Unit) -> None:
    """The decision is made: how its new runs reach the workers, and what is handed on."""
    hand_out(unit)
    take_carried(unit)


def hand_out(unit: Unit) -> None:
    """Send the runs ``unit`` queued on their way (see :func:`delivery.route`)."""
    if unit.status != E.RUNNING:
        return
    decided = delivery.route(
        [row for row in unit.new if row["published_at"] is not None],
        lambda row: delivery.may_run_in_place(
            unit.definition.step(row["step_name"]), row["status"], row["item_index"] is not None
        ),
        inline=unit.inline is not None and unit.continued is None,
        capacity=unit.facts.workers_capacity,
        carrying=bool(unit.settings.inline_steps),
    )
    if decided.in_place is not None:
        _run_in_place(unit, decided.in_place)
    for row in decided.carried:
        row["carried"] = True


def _run_in_place(unit: Unit, row: dict[str, Any]) -> None:
    assert unit.inline is not None
    worker, carrier = unit.inline
    row.update(in_place(worker, carrier, unit.now))  # (its input stays its own: see Unit.inserted)
    unit.in_place_event(row, worker)


def take_carried(unit: Unit) -> None:
    """A branch of a fan-out reported: hand on one of its carried siblings, if any is left
    (:func:`delivery.hand_on`). Not when ``unit`` carried runs itself: the fan-out's own
    messages carry those. Which sibling is the store's to find (:func:`took` hears which)."""
    carrier = unit.carrier and unit.status == E.RUNNING and not any(row["carried"] for row in unit.new)
    busy = unit.continued is not None or any(row["worker"] is not None for row in unit.new)
    how = delivery.hand_on(carrier, inline=unit.inline is not None, busy=busy)
    if how is not None:
        unit.take = unit.inline if how == "run" and unit.inline is not None else (None, None)


def took(unit: Unit, taken: tuple[int, dict[str, Any]] | None) -> None:
    """The store took the carried run ``taken`` (id and row) as ``unit.take`` said, or none."""
    if taken is None or unit.take is None:
        return
    run_id, row = taken
    worker = unit.take[0]
    if worker is None:
        step = unit.definition.step(row["step_name"])
        unit.dispatches.append(unit.dispatch_of(run_id, step, row["attempt"], None, row.get("item_index")))
        return
    unit.continued = (run_id, row)
    unit.in_place_event(row, worker)
