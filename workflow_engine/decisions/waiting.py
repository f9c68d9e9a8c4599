"""Steps that wait for something from outside: a person's data (human steps, steps waiting for a
fix) or a signal (wait steps).

A signal goes to the wait step that has waited for it longest; with none waiting it is kept,
and a wait step that opens takes the oldest kept for it (``Unit.open``), so signals are taken
one per wait step in the order they were sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workflow_engine.core.states import TERMINAL_EXECUTION, ExecutionStatus, StepStatus
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions.schemas import check_data
from workflow_engine.errors import InvalidOperation, SignalNotFound
from workflow_engine.store.records import StepRunRecord

E = ExecutionStatus
S = StepStatus


def send_signal(
    unit: Unit, name: str, data: Any, user: str | None = None, seal: Callable[[Any], Any] | None = None
) -> str | None:
    """Signal ``name`` with ``data``: the wait step waiting for it longest takes it, or it is kept
    for the next wait step for it to be reached. The step that took it (None: kept). ``seal``
    seals its secrets once it is found good."""
    if unit.status in TERMINAL_EXECUTION:
        raise InvalidOperation(f"execution is {unit.status}: it takes no more signals")
    listening = unit.definition.listening(name)
    if not listening:
        raise SignalNotFound(name, unit.definition.name)
    for step in listening:
        check_data(step.input_schema, data, f"data for signal {name!r}")
    data = seal(data) if seal is not None else data
    waiting = [
        run
        for run in unit.runs.in_states((S.WAITING,))
        if run.item_index is None and unit.definition.step(run.step_name).waits_for == name
    ]
    who = user or "an operator"
    row = {"execution_id": unit.id, "name": name, "data": data, "sent_by": user, "sent_at": unit.now}
    if not waiting:
        unit.signals_sent.append(row)
        reason = f"signal {name!r} from {who} kept until a step waits for it"
        unit.event(None, None, unit.status, unit.status, reason, {"signal": name}, actor=user)
        return None
    run = min(waiting, key=lambda run: (run.started_at or unit.now, run.id))
    unit.signals_sent.append(
        {**row, "consumed_step": run.step_name, "consumed_attempt": run.attempt, "consumed_at": unit.now}
    )
    succeed(unit, run, data, user, f"took signal {name!r} from {who}", f"took signal {name!r}")
    return run.step_name


def succeed(unit: Unit, run: StepRunRecord, data: Any, user: str | None, reason: str, how: str) -> None:
    """A waiting run succeeds with ``data`` as its output (``how``: completed, or the signal it
    took), and the execution moves on."""
    values = {"status": S.SUCCEEDED, "output": data, "completed_by": user, "finished_at": unit.now}
    if run.started_at is not None:
        values["duration_ms"] = int((unit.now - run.started_at).total_seconds() * 1000)
    unit.runs.update(run.id, values, (S.WAITING,))
    unit.count(run.step_type, S.WAITING, S.SUCCEEDED)
    unit.event(run.step_name, run.attempt, S.WAITING, S.SUCCEEDED, reason, actor=user)
    if unit.status == E.WAITING:
        unit.transition(E.RUNNING, f"step {run.step_name!r} {how}")
    unit.advance(run.step_name, S.SUCCEEDED, data)
    unit.settle()
