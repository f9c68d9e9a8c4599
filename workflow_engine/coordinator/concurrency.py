"""Concurrency limits applied at a start: the key a new execution is counted under, and what
it does when its key's slots are taken (the rules are :mod:`workflow_engine.core.limits`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import partial
from typing import Any

from workflow_engine.clock import Clock
from workflow_engine.coordinator.outbox import Outbox
from workflow_engine.coordinator.recording import DefinitionCache, apply
from workflow_engine.core import limits
from workflow_engine.core.expressions import Expression, compile_expression
from workflow_engine.core.limits import Admission, slot_key
from workflow_engine.core.states import ExecutionStatus
from workflow_engine.decisions import control, steps
from workflow_engine.decisions.facts import Facts
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions.model import KEY_NAMES, WorkflowDefinition
from workflow_engine.errors import ExpressionError, InputError, Problem
from workflow_engine.store import slots
from workflow_engine.store.repository import Store
from workflow_engine.store.transaction import Tx

Decided = Callable[[Tx, Facts, str, Callable[[Unit], Any]], tuple[Unit, Any]]

E = ExecutionStatus
WAITING_REASON = "waiting for a concurrency slot"


def key_of(definition: WorkflowDefinition, data: Any, metadata: Any) -> str | None:
    """The slot key of a new execution of ``definition`` (None: it has no concurrency limit)."""
    limit = definition.concurrency
    if limit is None:
        return None
    if limit.key is None:
        return slot_key(definition.name)
    try:
        value = _compiled(limit.key).evaluate({"input": data, "metadata": metadata})
    except ExpressionError as exc:
        raise InputError("input_data", [Problem("concurrency.key", str(exc))]) from None
    return slot_key(definition.name, value, keyed=True)


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Expression:
    return compile_expression(source, KEY_NAMES)


def described(definition: WorkflowDefinition, running: int) -> str:
    limit = definition.concurrency
    assert limit is not None
    scope = f"key {limit.key}" if limit.key else "the workflow"
    return f"{running} of {limit.max_running} running for {scope}"


def hold_back(unit: Unit, admission: Admission, running: int) -> None:
    """A new execution over its limit: it waits, initialized (``queue``, and while the oldest
    running one is cancelled for it: ``cancel_in_progress``), or it is cancelled at once."""
    record, definition = unit.record, unit.definition
    limit = described(definition, running)
    reason = f"{record.workflow_name} {record.workflow_version}, mode {record.mode}"
    if admission is Admission.CANCEL:
        unit.event(None, None, None, E.INITIALIZED, reason)
        control.cancel(unit, f"concurrency limit: {limit} (strategy cancel_newest)")
    else:
        unit.event(None, None, None, E.INITIALIZED, f"{reason}; {WAITING_REASON} ({limit})")


def admission(
    tx: Tx, definition: WorkflowDefinition, key: str, execution_id: str, clock: Clock
) -> tuple[Callable[[Unit], Any], str | None]:
    """How the new ``execution_id`` under ``key`` begins, and the running one it cancels (if
    any). The key is held until the transaction ends: two starts never take one slot. Executions
    already waiting go first: while any wait, a new one waits too."""
    limit = definition.concurrency
    assert limit is not None
    taken = tx.held_slots(key, limit.max_running, besides=execution_id, clock=clock)
    admitted = limits.admit(limit.strategy, len(taken), limit.max_running)
    tx.advance(clock)  # it starts after whatever it saw end
    if admitted is Admission.START:
        return steps.begin, None
    holding = [execution for execution, status in taken if status != E.INITIALIZED]
    oldest = holding[0] if admitted is Admission.CANCEL_OLDEST and holding else None
    return partial(hold_back, admission=admitted, running=len(holding)), oldest


class Slots:
    """Starts the executions waiting for a key's slots when slots free."""

    def __init__(self, store: Store, definitions: DefinitionCache, decided: Decided, outbox: Outbox) -> None:
        self.store = store
        self.definitions = definitions
        self.decided = decided
        self.outbox = outbox

    def freed(self, key: str) -> int:
        """An execution holding one of ``key``'s slots ended: start what waits for it. Without a
        lock, nothing waiting is seen cheaply; a start that was queueing meanwhile releases
        after its own commit (see ``Coordinator.start``), so none is left waiting."""
        return self.release(key) if self.store.waiting_for_slot(key) else 0

    def release(self, key: str, actor: str = "concurrency") -> int:
        """Start the executions waiting for ``key``'s slots, oldest first, as many as are free
        (by the limit of the oldest one's workflow version); how many started."""
        units: list[Unit] = []
        with self.store.transaction() as tx:
            tx.hold(f"concurrency:{key}", self.store.clock)
            waiting = slots.queued(tx, key, 1000)
            if not waiting:
                return 0
            first = tx.execution(waiting[0])
            limit = self.definitions.get(first.workflow_id).concurrency if first else None
            free = limits.free_slots(len(slots.holders(tx, key)), limit.max_running if limit else 1)
            tx.advance(self.store.clock)  # they start after the holders they saw end
            for execution_id in waiting[:free]:
                record = tx.lock_execution(execution_id)
                if record is None or record.status != E.INITIALIZED:
                    continue
                facts = Facts(tx.now, record, outputs_of=None, runs=(), attempts={})
                unit, _ = self.decided(tx, facts, actor, partial(steps.begin, queued=True))
                apply(tx, unit)
                units.append(unit)
        for unit in units:
            self.outbox.after_commit(unit)
        return len(units)
