"""New attempts of a step (or of a map's item): after the retry policy's backoff, or at once
when the previous one was lost with its worker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflow_engine.core import mapping
from workflow_engine.core.states import ExecutionStatus, StepStatus
from workflow_engine.decisions.unit import Unit, new_run
from workflow_engine.definitions.model import StepDefinition
from workflow_engine.store.records import StepRunRecord

E = ExecutionStatus
S = StepStatus


def schedule_retry(
    unit: Unit,
    step: StepDefinition,
    attempt: int,
    reason: str,
    item: StepRunRecord | None = None,
    delay: float | None = None,
    given: Any = None,
) -> None:
    """A new attempt after ``delay`` seconds, or the policy's backoff (of a map's ``item``: its
    failed run), given the failed run's own input (``given``: a task step's arguments)."""
    delay = step.retry.delay(attempt, unit.rng) if delay is None else delay
    not_before = unit.now + timedelta(seconds=delay)
    row = new_run(unit.id, unit.now, step, attempt + 1)
    row["input"] = given
    if item is not None:
        row.update(step_type=item.step_type, item_index=item.item_index, item=item.item)
        row["input"] = item.input if step.input else None
    # a paused execution holds the next attempt back like any queued step; resume publishes it
    # with its backoff intact (step mode does not: the step next_step started runs to its end)
    held = unit.status == E.PAUSED
    status = S.PENDING if held else S.RETRYING
    row.update(status=status, not_before=not_before)
    if not held and delay <= unit.settings.eta_horizon:
        row["published_at"] = unit.now
    unit.new.append(row)
    note = "held: execution paused" if held else f"attempt {attempt + 1} in {delay:.2f}s"
    if item is None:
        unit.count(step.type, None, status)
        unit.event(step.name, attempt + 1, None, status, f"{reason}; {note}")
        return
    unit.maps[step.name]["running"] += int(status in mapping.ADMITTED) - 1  # (it took the slot)
    unit.changes["maps"] = unit.maps
    unit.event(step.name, attempt + 1, None, status, f"{reason}; {note}", {"index": item.item_index})


def rerun(unit: Unit, step: StepDefinition, attempt: int, reason: str, given: Any = None) -> None:
    """A new attempt at once (the previous one was lost with its worker), given its own input
    (``given``: a task step's arguments)."""
    row = new_run(unit.id, unit.now, step, attempt + 1)
    row["input"] = given
    held = unit.status == E.PAUSED or unit.step_mode
    row.update(status=S.PENDING if held else S.QUEUED, published_at=None if held else unit.now)
    unit.new.append(row)
    unit.count(step.type, None, row["status"])
    unit.event(step.name, attempt + 1, None, row["status"], reason)
