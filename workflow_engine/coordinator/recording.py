"""Recording what happens to executions: the worker-facing outcome recorder, and the one way
any decision is loaded for and applied in a transaction.

A step's outcome is recorded by :meth:`Recorder.record`, which tries an ordered list of
*appliers*, cheapest first; each answers with what became of the attempt, or with
:class:`NotApplicable` when its guard does not hold (the next one is tried then):

- *item arrival*: a map item's success that only counts toward its map, in one statement that
  moves the map's counters on from the row as it is;
- *barrier arrival*: a success that only counts toward joins still waiting for other steps,
  in one statement that moves the join counters on from the row as it is (siblings never
  refuse each other);
- *optimistic*: the outcome of a step run in place, decided against the row the previous
  outcome wrote, and written in one round trip if that row is still at its revision;
- *locked*: the execution's row locked, the outcome recorded, the decision made and applied.
  It always applies.

Whatever the applier, the decision is :func:`workflow_engine.decisions.steps.after_attempt`
on a :class:`~workflow_engine.decisions.unit.Unit`, made by
:func:`~workflow_engine.decisions.steps.decide`; :func:`apply` writes it (the runs it
changes, then its new runs, the execution's row and its events: that last in one statement on
PostgreSQL). The run the worker takes next in place, if any, comes back in :class:`Finished`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from workflow_engine.coordinator.outbox import Outbox
from workflow_engine.core import mapping
from workflow_engine.core.states import StepStatus
from workflow_engine.decisions import delivery, steps, workflow_steps
from workflow_engine.decisions.dispatch import Dispatch
from workflow_engine.decisions.facts import (
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
from workflow_engine.decisions.outcomes import Claim, Finished, Outcome, Success
from workflow_engine.decisions.steps import decide, unread
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.definitions.validation import load_document
from workflow_engine.errors import ExecutionNotFound, StoreError
from workflow_engine.events import EventBus
from workflow_engine.outages import warn
from workflow_engine.settings import Settings
from workflow_engine.store.optimistic import OptimisticWrite
from workflow_engine.store.records import RUN_IN_PLACE, ExecutionRecord, StepRunRecord, event_row
from workflow_engine.store.repository import Store
from workflow_engine.store.seam import Arrival, Arrived, OutcomeStore, Take, Unsupported
from workflow_engine.store.transaction import Tx, latest_checkpoint

log = logging.getLogger(__name__)

S = StepStatus


@dataclass(frozen=True, slots=True)
class NotApplicable:
    """An applier's answer when its guard does not hold: nothing was written, and the next
    applier is tried."""

    why: str


Answer = Finished | NotApplicable


def loader(tx: Tx, execution_id: str, capacity: Callable[[], int] = lambda: 0) -> Callable[[Missing], Any]:
    """How ``tx`` reads what a decision on ``execution_id`` asks for (``capacity`` tells the
    workers' capacity): :func:`load_missing` bound to them."""
    return partial(load_missing, tx, execution_id, capacity)


def load_missing(tx: Tx, execution_id: str, capacity: Callable[[], int], missing: Missing) -> Any:
    """Read in ``tx`` what a decision on ``execution_id`` asks for. The runs are locked: a worker
    cannot claim a run the decision holds back or cancels."""
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
        delivery.took(unit, tx.take_carried(unit.id, worker, task, unit.record.input))
    if unit.signals_sent:
        tx.insert_signals(unit.signals_sent)
    if unit.signals_taken:
        tx.consume_signals(unit.signals_taken)
    values = unit.row_values()
    if values is not None:
        unit.inserted(tx.write(unit.id, values, unit.new, unit.events, last=last))


def apply_optimistic(
    plan: OptimisticWrite,
    unit: Unit,
    revision: int,
    run_id: int,
    worker: str | None,
    values: Mapping[str, Any],
) -> bool:
    """Write ``unit``'s decision in one statement, with ``values`` recorded as the outcome of the
    run ``run_id`` (of ``worker``; None: a workflow step's run, whose child ended), only if the
    execution's row is still at ``revision``: whether it was written (if not, nothing was). A
    decision that takes a carried run, supersedes runs, or keeps or takes signals needs more
    than one statement: not written."""
    row = unit.row_values()
    if row is None or unit.take is not None or unit.runs.superseded:
        return False
    if unit.signals_sent or unit.signals_taken:
        return False
    ids = plan.reserve(len(unit.new))
    if not plan.apply(unit.id, revision, run_id, worker, values, (row, unit.new, unit.events, ids)):
        return False
    unit.inserted(ids)
    return True


def _placed(definition: WorkflowDefinition, name: str, index: int | None) -> dict[str, Any]:
    """The fields of a claim that follow from its step's place in the workflow (a map's item
    counts toward its map, and hands nothing on; its siblings may be carried)."""
    joins, carrier = definition.placement[name]
    if index is not None:
        joins, carrier = None, True
    return {
        "definition": definition,
        "step": definition.steps_by_name[name],
        "joins": joins,
        "carrier": carrier,
    }


def _admits(claim: Claim) -> bool:
    """Whether the outcome of a map item is known to admit another (the row the previous outcome
    left has items pending): a one-statement count would not apply, so it is not tried."""
    if claim.execution is None or claim.index is None:
        return False
    progress = (claim.execution.maps or {}).get(claim.step.name)
    return progress is not None and mapping.pending(progress) != mapping.ITEM_ARRIVAL.pending


class DefinitionCache:
    """Parsed definitions by workflow id: registered versions are immutable, so they are
    cached (the least recently used ``size`` of them)."""

    def __init__(self, store: Store, size: int = 256) -> None:
        self.store = store
        self.size = size
        self._items: OrderedDict[int, WorkflowDefinition] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, workflow_id: int) -> WorkflowDefinition:
        with self._lock:
            found = self._items.get(workflow_id)
            if found is not None:
                self._items.move_to_end(workflow_id)
                return found
        record = self.store.get_workflow_by_id(workflow_id)
        definition = load_document(record.document, f"{record.name}@{record.version}", stored=True)
        with self._lock:
            self._items[workflow_id] = definition
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return definition


class Recorder:
    """Claims attempts for workers and records their outcomes (see the module's docstring)."""

    def __init__(
        self,
        store: OutcomeStore,
        definitions: DefinitionCache,
        settings: Settings,
        events: EventBus,
        rng: random.Random,
        outbox: Outbox,
        admit: Callable[[int], tuple[bool, datetime | None]],
        opener: Callable[[Any], Any] | None = None,
    ) -> None:
        self.opener = opener  # decrypts the secrets a condition reads (see Unit.condition_scope)
        self.store = store
        self.definitions = definitions
        self.settings = settings
        self.events = events
        self.rng = rng
        self.outbox = outbox
        self.admit = admit  # a rate-limited run: whether it may start now, and when it starts
        self._capacity = (0, 0.0)  # steps the workers run at once, and until when that holds (monotonic)

    def claim(
        self, run_id: int, worker: str, task_id: str | None = None, rated: bool = False
    ) -> Claim | None:
        """Take a queued attempt for ``worker``; None when it is no longer there to take, or when
        its step's rate limit (``rated``) makes it wait."""
        at = None
        if rated:
            admitted, at = self.admit(run_id)
            if not admitted:
                return None
        claimed = self.store.claim(run_id, worker, task_id, at)
        if claimed is None:
            return None
        definition = self.definitions.get(claimed.workflow_id)
        checkpoint = None
        if claimed.attempt > 1:
            with self.store.reading() as conn:
                checkpoint = latest_checkpoint(
                    conn, claimed.execution_id, claimed.step_name, claimed.item_index
                )
        self.events.publish(
            [
                {
                    "execution_id": claimed.execution_id,
                    "step_name": claimed.step_name,
                    "attempt": claimed.attempt,
                    "to_status": S.RUNNING,
                    "actor": worker,
                    "created_at": claimed.started_at,
                }
            ]
        )
        return Claim(
            run_id=run_id,
            execution_id=claimed.execution_id,
            workflow=claimed.workflow_name,
            version=claimed.workflow_version,
            workflow_id=claimed.workflow_id,
            attempt=claimed.attempt,
            input=claimed.execution_input,
            metadata=claimed.execution_metadata,
            checkpoint=checkpoint,
            worker=worker,
            retries=claimed.retries,
            due_at=max(claimed.queued_at, claimed.not_before or claimed.queued_at),
            started_at=claimed.started_at,
            index=claimed.item_index,
            item=claimed.item,
            **_placed(definition, claimed.step_name, claimed.item_index),
        )

    def record(self, claim: Claim, outcome: Outcome, in_place: str | None = None) -> Finished:
        """Record what the attempt gave and what follows from it, by the first applier whose
        guard holds. With ``in_place`` (the id of the Celery task the worker runs), the one step
        that follows may be handed back to run in place instead of being published (not after
        a map's item: see _following)."""
        if isinstance(outcome, Success) and claim.index is not None and not _admits(claim):
            answer = self._item_arrival(claim, outcome, in_place)
            if not isinstance(answer, NotApplicable):
                return answer
        if isinstance(outcome, Success) and claim.joins is not None:
            answer = self._arrival(claim, outcome, in_place)
            if not isinstance(answer, NotApplicable):
                return answer
        if claim.execution is not None:
            answer = self._optimistic(claim, outcome, in_place)
            if not isinstance(answer, NotApplicable):
                return answer
        return self._locked(claim, outcome, in_place)

    def _locked(self, claim: Claim, outcome: Outcome, in_place: str | None) -> Finished:
        """The execution's row locked, the outcome recorded, the decision made from the row (and
        what it asks for) and applied, in one transaction. It always applies."""
        now = self.store.clock.now()
        status, values = steps.attempt_values(outcome, now, item=claim.index is not None)
        with self.store.pipelined(now) as tx:
            record, applied = tx.lock_and_finish_run(claim.execution_id, claim.run_id, claim.worker, values)
            if record is None:
                raise ExecutionNotFound(claim.execution_id)
            if not applied:
                return self._recorded_before(tx, claim, status)
            act = partial(steps.after_attempt, claim=claim, outcome=outcome, status=status)
            facts = Facts(tx.now, record, capacity=None)
            load = partial(load_missing, tx, claim.execution_id, self.capacity)
            unit, result = decide(facts, self._maker(claim, in_place), act, load, self.rng.getrandbits(64))
            apply(tx, unit, last=True)
        return self._finished(unit, claim, result)

    def _recorded_before(self, tx: Tx, claim: Claim, status: str) -> Finished:
        """The attempt's run no longer runs for this worker. When it ended as this outcome says,
        by this worker (a call made again after its commit went through unanswered), the outcome
        was recorded: what its decision queued is published again (a second message for a run,
        or for a carried one, is left alone by whoever claims it second) and a run it handed
        this worker in place is taken up. Otherwise the outcome came too late: discarded."""
        run = tx.run(claim.run_id)
        if (
            run is None
            or run.worker != claim.worker
            or run.attempt != claim.attempt
            or run.status != status
            or run.finished_at is None
        ):
            log.info(
                "result of %s:%s:%s discarded: no longer current",
                claim.execution_id,
                claim.step.name,
                claim.attempt,
            )
            return Finished(steps.DISCARDED)
        decided = [
            other
            for other in tx.live_runs(claim.execution_id)
            if other.queued_at == run.finished_at and other.id != run.id
        ]
        definition = self._definition(claim)
        dispatches = [
            Dispatch.of(
                definition.steps_by_name[other.step_name],
                other.id,
                claim.execution_id,
                claim.workflow,
                other.attempt,
                other.not_before,
                other.item_index,
            )
            for other in decided
            if other.status == S.QUEUED and other.published_at is not None
        ]
        if dispatches:
            self.outbox.publish(dispatches)
        for other in decided:
            if (
                other.status == S.RUNNING
                and other.worker == claim.worker
                and other.started_at == run.finished_at
            ):
                row = {
                    "step_name": other.step_name,
                    "attempt": other.attempt,
                    "input": other.input if other.input is not None else claim.input,
                    "item_index": other.item_index,
                    "item": other.item,
                    "queued_at": other.queued_at,
                    "started_at": other.started_at,
                }
                return Finished(
                    status, self._following(claim, other.id, row, definition, None, claim.retries)
                )
        return Finished(status)

    def _arrival(self, claim: Claim, outcome: Success, in_place: str | None) -> Answer:
        """A success that only counts toward joins still waiting for other steps, in one
        statement that moves the execution's counters on from its row as it is (siblings
        finishing together never refuse each other), and takes a carried sibling: to run in
        place, or (``in_place`` None: the worker runs no more in place) to publish. Not applicable
        when a join becomes due by it, or anything else is to be decided."""
        assert claim.joins is not None
        now = self.store.clock.now()
        _, values = steps.attempt_values(outcome, now)
        event = event_row(
            claim.execution_id, claim.step.name, claim.attempt, S.RUNNING, S.SUCCEEDED, claim.worker, now
        )
        # the statement applies only while the execution runs and carries nothing of this unit's
        take = self._take(claim, in_place)
        checkpoint = {"last_completed_step": claim.step.name}
        arrival = Arrival(
            claim.execution_id, claim.run_id, claim.worker, values, claim.joins, checkpoint, event
        )
        answer = self.store.record_arrival(arrival, take)
        if not isinstance(answer, Arrived):
            return NotApplicable(f"{answer!r}: a join becomes due, or the execution does not run")
        taken = answer.taken
        self.events.publish([event])
        return self._taken(claim, take, taken, now)

    @staticmethod
    def _take(claim: Claim, in_place: str | None) -> Take:
        """What a one-statement outcome does with a carried sibling (see delivery.hand_on)."""
        how = delivery.hand_on(claim.carrier, worker_may_run=in_place is not None, busy=False)
        return Take("run", in_place, RUN_IN_PLACE) if how == "run" else Take(how or "none")

    def _taken(
        self, claim: Claim, take: Take, taken: tuple[int, dict[str, Any]] | None, now: Any
    ) -> Finished:
        """After a one-statement outcome: publish the carried run it took, or hand it back to
        run in place."""
        if taken is None:
            return Finished(str(S.SUCCEEDED))
        run_id, row = taken
        definition = self._definition(claim)
        if take.how == "send":
            step = definition.steps_by_name[row["step_name"]]
            dispatch = Dispatch.of(
                step, run_id, claim.execution_id, claim.workflow, row["attempt"], None, row["item_index"]
            )
            self.outbox.publish([dispatch])
            return Finished(str(S.SUCCEEDED))
        name, attempt = row["step_name"], row["attempt"]
        self.events.publish(
            [
                event_row(
                    claim.execution_id, name, attempt, S.QUEUED, S.RUNNING, claim.worker, now, RUN_IN_PLACE
                )
            ]
        )
        following = self._following(
            claim, run_id, {**row, "started_at": now}, definition, None, claim.retries
        )
        return Finished(str(S.SUCCEEDED), following)

    def _item_arrival(self, claim: Claim, outcome: Success, in_place: str | None) -> Answer:
        """A map item's success that only counts (see ``core.mapping.ItemArrivalGuard``), in one
        statement that also takes a carried sibling (as for a barrier arrival); not applicable
        when the guard does not hold."""
        now = self.store.clock.now()
        _, values = steps.attempt_values(outcome, now, item=True)
        details = {"index": claim.index}
        event = event_row(
            claim.execution_id,
            claim.step.name,
            claim.attempt,
            S.RUNNING,
            S.SUCCEEDED,
            claim.worker,
            now,
            None,
            details,
        )
        arrival = Arrival(claim.execution_id, claim.run_id, claim.worker, values, {}, None, event)
        take = self._take(claim, in_place)
        answer = self.store.record_item_arrival(arrival, claim.step.name, take)
        if not isinstance(answer, Arrived):
            return NotApplicable(f"{answer!r}: the map's guard does not hold")
        taken = answer.taken
        self.events.publish([event])
        return self._taken(claim, take, taken, now)

    def _optimistic(self, claim: Claim, outcome: Outcome, in_place: str | None) -> Answer:
        """The outcome of a step run in place, in one round trip: planned against the row the
        previous step's outcome wrote, and recorded only if the row is still at that revision.
        Not applicable when it is not, or when the decision needs to read."""
        assert claim.execution is not None
        with self.store.optimistic() as plan:
            if isinstance(plan, Unsupported):
                return NotApplicable("this database has no one-round-trip outcome")
            status, values = steps.attempt_values(outcome, plan.now, item=claim.index is not None)
            act = partial(steps.after_attempt, claim=claim, outcome=outcome, status=status)

            def load(missing: Missing) -> Any:
                if missing.what == CAPACITY:  # not from the database
                    return self.capacity()
                raise missing

            facts = Facts(plan.now, claim.execution, capacity=None)
            try:
                make, seed = self._maker(claim, in_place), self.rng.getrandbits(64)
                unit, result = decide(facts, make, act, load, seed)
            except Missing:
                return NotApplicable("the decision reads the database")
            # (changing or superseding runs asks for them first: Missing above)
            revision = claim.execution.revision
            if not apply_optimistic(plan, unit, revision, claim.run_id, claim.worker, values):
                return NotApplicable("more than one statement, or the row moved on from its revision")
        return self._finished(unit, claim, result)

    def child_ended(self, parent: ExecutionRecord, run: StepRunRecord, child: ExecutionRecord) -> Unit | None:
        """The end of ``child`` told to its ``parent`` in one round trip: decided against the
        parent's row as the worker that started the child last wrote it, the end recorded as the
        outcome of the parent's ``run`` that waits for it, only if the row is still at that
        revision. The parent's decision, or None when it needs more (the locked path decides)."""
        definition = self.definitions.get(parent.workflow_id)

        def make(facts: Facts, rng: random.Random) -> Unit:
            unit = Unit(facts, definition, self.settings, f"child {child.id}", rng)
            unit.opener = self.opener
            return unit

        def act(unit: Unit) -> bool:
            return workflow_steps.child_ended(unit, run.step_name, run.item_index, child, run)

        with self.store.optimistic() as plan:
            if isinstance(plan, Unsupported):
                return None
            try:
                facts = Facts(plan.now, parent, capacity=None)
                unit, changed = decide(facts, make, act, unread, self.rng.getrandbits(64))
            except Missing:
                return None
            own = unit.runs.changes
            if not changed or len(own) != 1 or own[0].step != run.step_name:
                return None  # (only the waiting run changes: its values are the outcome recorded)
            if not apply_optimistic(plan, unit, parent.revision, run.id, None, own[0].values):
                return None
        return unit

    def _maker(self, claim: Claim, in_place: str | None) -> Callable[..., Unit]:
        """How the unit that decides what follows ``claim``'s outcome is made."""
        return partial(
            Unit,
            definition=claim.definition or self.definitions.get(claim.workflow_id),
            settings=self.settings,
            actor=claim.worker,
            opener=self.opener,
            in_place=None if in_place is None else (claim.worker, in_place),
            carrier=claim.carrier,
            parent=claim.parent,
        )

    def _definition(self, claim: Claim) -> WorkflowDefinition:
        """The workflow of ``claim``'s step (a claim made by hand may not carry it)."""
        return claim.definition or self.definitions.get(claim.workflow_id)

    def capacity(self) -> int:
        """How many steps the live workers can run at once, as their heartbeats tell (0 when
        none is known); read at most once a heartbeat interval."""
        now = time.monotonic()
        if now >= self._capacity[1]:
            since = self.store.clock.now() - timedelta(seconds=self.settings.worker_lost_after)
            try:
                count = self.store.capacity(self.settings.steps_queue, since)
            except StoreError as exc:
                warn(log, exc, "could not read the workers' capacity")
                count = self._capacity[0]
            self._capacity = (count, now + self.settings.heartbeat_interval)
        return self._capacity[0]

    def _finished(self, unit: Unit, claim: Claim, result: str) -> Finished:
        """After the outcome's commit: publish, revoke, announce; the step to run in place (of
        this execution, or the first of a child it started)."""
        free = unit.continued is None and unit.in_place is not None and claim.index is None
        child = self.outbox.after_commit(unit, unit.in_place if free else None)
        following = None
        if unit.continued is not None:
            run_id, row = unit.continued
            following = self._following(
                claim, run_id, row, unit.definition, unit.saved_record(), unit.retries
            )
        elif child is not None and child.continued is not None:
            following = self._first_of(child, claim.worker, unit)
        if result == steps.DISCARDED:
            log.info(
                "result of %s:%s:%s discarded: no longer current",
                claim.execution_id,
                claim.step.name,
                claim.attempt,
            )
        return Finished(result, following)

    def _following(
        self,
        claim: Claim,
        run_id: int,
        row: dict[str, Any],
        definition: WorkflowDefinition,
        execution: ExecutionRecord | None,
        retries: int,
    ) -> Claim:
        """The claim of the run ``row`` that ``claim``'s worker takes next, in place."""
        index = row.get("item_index")
        return replace(
            claim,
            run_id=run_id,
            attempt=row["attempt"],
            input=row["input"] if row.get("input") is not None else claim.input,
            index=index,
            item=row.get("item"),
            checkpoint=self._checkpoint_after(claim.execution_id, row),
            retries=retries,
            due_at=row["queued_at"],
            started_at=row["started_at"],
            execution=execution,
            **_placed(definition, row["step_name"], index),
        )

    def _first_of(self, child: Unit, worker: str, parent: Unit) -> Claim:
        """The claim of a child's first step, run in place by the worker that started it (in
        ``parent``'s decision's follow-up: it knows the parent's row and the run that waits)."""
        run_id, row = child.continued  # type: ignore[misc]
        record = child.saved_record() or child.record
        index = row.get("item_index")
        waits = parent.written_run(record.parent_step or "", record.parent_index)
        written = parent.saved_record()
        known = (written, waits) if written is not None and waits is not None else None
        return Claim(
            run_id=run_id,
            execution_id=record.id,
            workflow=record.workflow_name,
            version=record.workflow_version,
            workflow_id=record.workflow_id,
            attempt=row["attempt"],
            input=row["input"],
            metadata=record.metadata,
            checkpoint=None,
            worker=worker,
            retries=record.retries,
            due_at=row["queued_at"],
            started_at=row["started_at"],
            execution=record,
            index=index,
            item=row.get("item"),
            parent=known if record.parent_index is None else None,  # (an item's end counts: locked)
            **_placed(child.definition, row["step_name"], index),
        )

    def _checkpoint_after(self, execution_id: str, row: dict[str, Any]) -> Any:
        """The checkpoint a step taken after a committed outcome resumes from (a later attempt)."""
        if row["attempt"] <= 1:
            return None
        try:  # the outcome is committed already: a failed read must not make it look unrecorded
            with self.store.reading() as conn:
                return latest_checkpoint(conn, execution_id, row["step_name"], row.get("item_index"))
        except StoreError as exc:
            warn(log, exc, "checkpoint of %s:%s not read", execution_id, row["step_name"])
            return None
