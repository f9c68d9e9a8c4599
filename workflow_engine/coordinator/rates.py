"""Fleet-wide rate limits applied when a worker takes a message: the run of a rate-limited step
starts only if its key's window has room (:mod:`workflow_engine.store.rates`); otherwise it stays
queued, costs no attempt, and its message is published again for when the window frees."""

from __future__ import annotations

import logging
from datetime import datetime

from workflow_engine.coordinator.recording import DefinitionCache
from workflow_engine.core.expressions import ITEM_NAMES, compile_expression
from workflow_engine.core.limits import slot_key
from workflow_engine.core.states import StepStatus
from workflow_engine.decisions.dispatch import Dispatch, Dispatcher
from workflow_engine.definitions.model import KEY_NAMES, StepDefinition
from workflow_engine.errors import ExpressionError
from workflow_engine.store import rates
from workflow_engine.store.records import ExecutionRecord, StepRunRecord
from workflow_engine.store.repository import Store

log = logging.getLogger(__name__)


def rate_key(record: ExecutionRecord, step: StepDefinition, run: StepRunRecord) -> str:
    """The key a run's start is counted under: its workflow and step, and the value of
    ``rate_limit_key`` over the execution's input and metadata (and a map item's)."""
    scope = f"{record.workflow_name}/{step.name}"
    if step.rate_limit_key is None:
        return slot_key(scope)
    names = {"input": record.input, "metadata": record.metadata, "item": run.item, "index": run.item_index}
    try:
        value = compile_expression(step.rate_limit_key, KEY_NAMES | ITEM_NAMES).evaluate(names)
    except ExpressionError as exc:  # a key that cannot be read counts under the step's own
        log.warning("rate_limit_key of %s: %s; counted under the step's own key", scope, exc)
        return slot_key(scope)
    return slot_key(scope, value, keyed=True)


class Rates:
    def __init__(self, store: Store, definitions: DefinitionCache, dispatcher: Dispatcher) -> None:
        self.store = store
        self.definitions = definitions
        self.dispatcher = dispatcher

    def admit(self, run_id: int) -> tuple[bool, datetime | None]:
        """Whether the run may start now, and the start time its rate limit recorded (it starts
        then); when it may not, its message is published again for when the window frees. A
        run no longer queued is admitted with no time: its claim finds it gone."""
        with self.store.transaction() as tx:
            run = tx.run(run_id)
            record = tx.execution(run.execution_id) if run is not None else None
            if run is None or record is None or run.status != StepStatus.QUEUED:
                return True, None
            step = self.definitions.get(record.workflow_id).step(run.step_name)
            rate = step.rate
            if rate is None:
                return True, None
            started, free_at = rates.take(tx, rate_key(record, step, run), rate, self.store.clock)
            if free_at is None:
                return True, started
            rates.wait(tx, run_id, free_at)
        self._publish(step, run, record, free_at)
        return False, None

    def _publish(
        self, step: StepDefinition, run: StepRunRecord, record: ExecutionRecord, at: datetime
    ) -> None:
        dispatch = Dispatch.of(step, run.id, record.id, record.workflow_name, run.attempt, at, run.item_index)
        self.dispatcher.dispatch([dispatch])
