"""Deciding inside a transaction: load what a decision asks for, then apply what it decided.

:func:`decide` runs a decision (a function of a :class:`~workflow_engine.coordinator.unit.Unit`)
from the facts at hand; each time it raises :class:`~workflow_engine.coordinator.facts.Missing`,
the facts it names are read in the transaction and the decision starts again on a fresh unit.
:func:`apply` hands the decided changes to the store, in the order the decision assumed: runs
changed, runs superseded, a carried sibling taken, then the new runs, the execution's row and
the events (one statement on PostgreSQL).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from workflow_engine.coordinator import handout, maps
from workflow_engine.coordinator.facts import (
    ATTEMPTS,
    CAPACITY,
    ITEM_RUNS,
    OUTPUTS,
    PENDING_ITEMS,
    RESULTS,
    RUNS,
    SIGNALS,
    Facts,
    Missing,
)
from workflow_engine.coordinator.unit import Unit
from workflow_engine.errors import StoreError
from workflow_engine.store.transaction import Tx

T = TypeVar("T")


def decide(
    facts: Facts,
    make: Callable[[Facts, random.Random], Unit],
    act: Callable[[Unit], T],
    load: Callable[[Missing], Any],
    seed: int,
) -> tuple[Unit, T]:
    """The unit ``act`` decided on, from ``facts`` and what ``load`` adds, and what it returned.
    Every round draws the same random numbers (``seed``), so a retry's backoff does not change
    with the facts the decision had to ask for. Each round knows more than the one before (the
    second time outputs are asked for, all of them are loaded), so the rounds end."""
    while True:
        unit = make(facts, random.Random(seed))
        try:
            result = act(unit)
            maps.start_opened(unit)
            handout.conclude(unit)
        except Missing as missing:
            if missing.what == OUTPUTS and facts.outputs_of:
                missing = Missing(OUTPUTS)  # a second time: every output, at once
            known = facts.loaded(missing, load)
            if known == facts:
                raise AssertionError(f"a decision on {facts.record.id} asked again for {missing}") from None
            facts = known
            continue
        return unit, result


def loader(tx: Tx, execution_id: str, capacity: Callable[[], int] = lambda: 0) -> Callable[[Missing], Any]:
    """How ``tx`` reads what a decision on ``execution_id`` asks for (``capacity`` tells the
    workers' capacity). The runs are locked: a worker cannot claim a run the decision holds
    back or cancels."""

    def load(missing: Missing) -> Any:
        if missing.what == CAPACITY:
            return capacity()
        if missing.what == OUTPUTS:
            return tx.outputs(execution_id, missing.names)
        if missing.what == RUNS:
            return tx.live_runs(execution_id)
        if missing.what == ITEM_RUNS:
            assert missing.key is not None
            return tx.item_runs(execution_id, missing.step, missing.key)
        if missing.what == PENDING_ITEMS:
            assert missing.key is not None
            return tx.pending_items(execution_id, missing.step, missing.key)
        if missing.what == RESULTS:
            return tx.item_outputs(execution_id, missing.step)
        if missing.what == SIGNALS:
            return tx.kept_signals(execution_id, missing.step)
        assert missing.what == ATTEMPTS, missing.what
        return tx.latest_attempts(execution_id)

    return load


def apply(tx: Tx, unit: Unit, last: bool = False) -> None:
    """Write what ``unit`` decided; ``last`` when nothing else runs in the transaction after."""
    for change in unit.runs.changes:
        if change.step is not None:
            applied = tx.update_own_run(unit.id, change.step, change.values, change.expect)
        else:
            applied = tx.update_runs_by_id(change.ids, change.values, change.expect)
        if not applied:
            # the runs were read locked: only a bug can get here
            raise StoreError(f"runs of {unit.id} changed under the execution's lock")
    if unit.runs.superseded:
        tx.supersede(unit.id, unit.runs.superseded, unit.runs.kept)
    if unit.take is not None:
        worker, task = unit.take
        handout.took(unit, tx.take_carried(unit.id, worker, task, unit.record.input))
    tx.insert_signals(unit.signals_sent)
    tx.consume_signals(unit.signals_taken)
    values = unit.row_values()
    if values is not None:
        unit.inserted(tx.write(unit.id, values, unit.new, unit.events, last=last))


def unread(missing: Missing) -> Any:
    """How a decision that cannot read (made outside a transaction) meets a need: it cannot."""
    raise missing
