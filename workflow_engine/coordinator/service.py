"""The coordinator: starts executions, hands step attempts to workers, records what they report,
and applies operators' verbs. Every decision is one transaction on a locked execution; the
messages it implies are published after the commit (see :mod:`workflow_engine.coordinator.unit`).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

from workflow_engine.coordinator import control, delivery, steps
from workflow_engine.coordinator.definitions import DefinitionCache
from workflow_engine.coordinator.delivery import RUN_IN_PLACE
from workflow_engine.coordinator.dispatch import Dispatch, Dispatcher
from workflow_engine.coordinator.outcomes import Claim, Finished, Outcome, Success
from workflow_engine.coordinator.unit import Unit
from workflow_engine.core import planner
from workflow_engine.core.states import ExecutionMode, ExecutionStatus, StepStatus
from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.definitions.schemas import check_data, check_payload
from workflow_engine.definitions.validation import unknown_agents
from workflow_engine.errors import (
    Conflict,
    DefinitionError,
    ExecutionNotFound,
    InputError,
    Problem,
    StoreError,
)
from workflow_engine.events import EventBus
from workflow_engine.settings import Settings
from workflow_engine.store.plan import NeedsLock
from workflow_engine.store.postgres import Counted, Take
from workflow_engine.store.records import ExecutionRecord, StepRunRecord
from workflow_engine.store.repository import Store
from workflow_engine.store.transaction import Tx, event_row, latest_checkpoint

log = logging.getLogger(__name__)

E = ExecutionStatus
S = StepStatus
MODES = tuple(ExecutionMode)
AgentCatalog = Callable[[], Collection[str] | None]


class Coordinator:
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        settings: Settings,
        events: EventBus | None = None,
        agent_catalog: AgentCatalog | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.settings = settings
        self.events = events or EventBus()
        self.agent_catalog = agent_catalog
        self.rng = rng or random.Random()
        self.definitions = DefinitionCache(store)
        self._capacity = (0, 0.0)  # steps the workers run at once, and until when that holds (monotonic)

    # the unit of work

    @contextmanager
    def unit(self, execution_id: str, actor: str, owner_id: int | None = None) -> Iterator[Unit]:
        """Lock ``execution_id``, yield its unit, save and commit, then publish what it decided."""
        with self.store.transaction() as tx:
            record = tx.lock_execution(execution_id, owner_id)
            if record is None:
                raise ExecutionNotFound(execution_id)
            unit = Unit(tx, record, self.definitions.get(record.workflow_id), self.settings, actor, self.rng)
            yield unit
            unit.save()
        self.after_commit(unit)

    def after_commit(self, unit: Unit) -> None:
        if unit.dispatches:
            self.publish(unit.dispatches)
        for terminate in (False, True):
            ids = [task for task, kill in unit.revocations if kill is terminate]
            if ids:
                try:
                    self.dispatcher.revoke(ids, terminate=terminate)
                except Exception:
                    log.warning("could not revoke %s", ids, exc_info=True)
        self.events.publish(unit.events)

    def publish(self, dispatches: Sequence[Dispatch]) -> None:
        """Publish committed runs; if the broker fails, leave them to the reconciler."""
        try:
            self.dispatcher.dispatch(dispatches)
        except Exception:
            log.warning(
                "publishing %d step(s) failed; the reconciler will publish them",
                len(dispatches),
                exc_info=True,
            )
            ids = [d.run_id for d in dispatches]
            try:
                with self.store.transaction() as tx:
                    tx.unpublish(ids)
            except Exception:
                log.warning("could not mark runs %s unpublished", ids, exc_info=True)

    # starting

    def start(
        self,
        workflow: str,
        *,
        input_data: Any = None,
        metadata: Any = None,
        version: str | None = None,
        owner_id: int | None = None,
        idempotency_key: str | None = None,
        mode: str = ExecutionMode.AUTO,
        actor: str = "system",
        visible_to: int | None = None,
    ) -> ExecutionRecord:
        """Create an execution and dispatch its first steps; the same idempotency key (per owner)
        returns the execution it started first. ``visible_to`` limits which workflows may be run
        (None: any)."""
        owner = owner_id if owner_id is not None else self.store.system_user_id()
        record = self.store.get_workflow(workflow, version, visible_to=visible_to)
        definition = self.definitions.get(record.id)
        data = {} if input_data is None else input_data
        check_data(definition.input_schema, data, "input_data")
        meta = {} if metadata is None else metadata
        if not isinstance(meta, dict):
            raise InputError("metadata", [Problem("", "must be a JSON object")])
        check_payload(meta, "metadata")
        if mode not in MODES:
            raise InputError("mode", [Problem("", f"must be one of {', '.join(MODES)}")])
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
            raise InputError("idempotency_key", [Problem("", "must be 1 to 255 characters")])
        self._check_agents(definition)
        execution_id = str(uuid.uuid4())
        with self.store.transaction() as tx:
            if idempotency_key is not None:
                existing = tx.execution_by_key(owner, idempotency_key)
                if existing is not None:
                    return self._same_request(existing, record.id, idempotency_key)
            values: dict[str, Any] = {
                "id": execution_id,
                "workflow_id": record.id,
                "workflow_name": record.name,
                "workflow_version": record.version,
                "owner_id": owner,
                "status": E.INITIALIZED,
                "mode": mode,
                "input": data,
                "metadata": meta,
                "output": None,
                "error": None,
                "idempotency_key": idempotency_key,
                "checkpoint": None,
                "barriers": None,
                "total_steps": len(definition.steps),
                "resolved_steps": 0,
                "active_steps": 0,
                "waiting_steps": 0,
                "retries": 0,
                "revision": 0,
                "created_at": tx.now,
                "started_at": None,
                "finished_at": None,
                "updated_at": tx.now,
            }
            if not tx.insert_execution(values):
                existing = tx.execution_by_key(owner, idempotency_key or "")
                assert existing is not None
                return self._same_request(existing, record.id, idempotency_key or "")
            unit = Unit(tx, ExecutionRecord(**values), definition, self.settings, actor, self.rng)
            unit.event(None, None, None, E.INITIALIZED, f"{record.name} {record.version}, mode {mode}")
            unit.transition(E.RUNNING, "started")
            unit.open(planner.start(definition.graph).ready)
            unit.settle()
            unit.save()
        self.after_commit(unit)
        return self.store.get_execution(execution_id)

    @staticmethod
    def _same_request(existing: ExecutionRecord, workflow_id: int, key: str) -> ExecutionRecord:
        if existing.workflow_id != workflow_id:
            raise Conflict(
                f"idempotency key {key!r} was used for execution {existing.id} of "
                f"{existing.workflow_name} {existing.workflow_version}"
            )
        return existing

    def _check_agents(self, definition: Any) -> None:
        catalog = self.agent_catalog() if self.agent_catalog else None
        if catalog:
            problems = unknown_agents(definition, catalog)
            if problems:
                raise DefinitionError(problems, definition.name)

    # worker-facing

    def claim(self, run_id: int, worker: str, task_id: str | None = None) -> Claim | None:
        """Take a queued attempt for ``worker``; None when it is no longer there to take."""
        claimed = self.store.claim(run_id, worker, task_id)
        if claimed is None:
            return None
        definition = self.definitions.get(claimed.workflow_id)
        checkpoint = None
        if claimed.attempt > 1:
            with self.store.reading() as conn:
                checkpoint = latest_checkpoint(conn, claimed.execution_id, claimed.step_name)
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
            **self._placed(definition, claimed.step_name),
        )

    @staticmethod
    def _placed(definition: WorkflowDefinition, name: str) -> dict[str, Any]:
        """The fields of a claim that follow from its step's place in the workflow."""
        return {
            "step": definition.step(name),
            "joins": planner.counted_joins(definition.graph, name),
            "carrier": definition.graph.has_siblings(name),
        }

    def finish(self, claim: Claim, outcome: Outcome, inline: str | None = None) -> Finished:
        """Record what the attempt gave and decide what follows. With ``inline`` (the id of the
        Celery task the worker runs), the one step that follows may be handed back to run in
        place instead of being published."""
        if claim.joins is not None and isinstance(outcome, Success):
            counted = self._finish_counted(claim, outcome, inline)
            if counted is not None:
                return counted
        if claim.execution is not None:
            planned = self._finish_planned(claim, outcome, inline)
            if planned is not None:
                return planned
        with self.store.pipelined() as tx:
            status, values = steps.attempt_values(outcome, tx.now)
            record, applied = tx.lock_and_finish_run(claim.execution_id, claim.run_id, claim.worker, values)
            if record is None:
                raise ExecutionNotFound(claim.execution_id)
            unit = self._outcome_unit(tx, record, claim, inline)
            result = steps.after_attempt(unit, claim, outcome, status) if applied else steps.DISCARDED
            unit.save(last=True)
        return self._finished(unit, claim, result)

    def _finish_counted(self, claim: Claim, outcome: Success, inline: str | None) -> Finished | None:
        """A success that only counts toward joins still waiting for other steps, in one
        statement that moves the execution's counters on from its row as it is (siblings
        finishing together never refuse each other), and takes a carried sibling: to run in
        place, or (``inline`` None: the worker runs no more in place) to publish. None when a
        join becomes due by it, or anything else is to be decided: the locked path decides then."""
        assert claim.joins is not None
        now = self.store.clock.now()
        _, values = steps.attempt_values(outcome, now)
        event = event_row(
            claim.execution_id, claim.step.name, claim.attempt, S.RUNNING, S.SUCCEEDED, claim.worker, now
        )
        # the statement applies only while the execution runs and carries nothing of this unit's
        how = delivery.hand_on(claim.carrier, inline=inline is not None, busy=False)
        take = Take("run", inline, claim.input, RUN_IN_PLACE) if how == "run" else Take(how or "none")
        checkpoint = {"last_completed_step": claim.step.name}
        counted = Counted(
            claim.execution_id, claim.run_id, claim.worker, values, claim.joins, checkpoint, event
        )
        applied, taken = self.store.finish_counted(counted, take)
        if not applied:
            return None
        self.events.publish([event])
        if taken is None:
            return Finished(str(S.SUCCEEDED))
        run_id, row = taken
        definition = self.definitions.get(claim.workflow_id)
        if take.how == "send":
            step = definition.step(row["step_name"])
            self.publish([Dispatch.of(step, run_id, claim.execution_id, claim.workflow, row["attempt"])])
            return Finished(str(S.SUCCEEDED))
        name, attempt = row["step_name"], row["attempt"]
        self.events.publish(
            [
                event_row(
                    claim.execution_id, name, attempt, S.QUEUED, S.RUNNING, claim.worker, now, RUN_IN_PLACE
                )
            ]
        )
        following = replace(
            claim,
            run_id=run_id,
            attempt=row["attempt"],
            checkpoint=self._checkpoint_after(claim.execution_id, row),
            due_at=row["queued_at"],
            started_at=now,
            execution=None,
            **self._placed(definition, row["step_name"]),
        )
        return Finished(str(S.SUCCEEDED), following)

    def _finish_planned(self, claim: Claim, outcome: Outcome, inline: str | None) -> Finished | None:
        """The outcome of a step run in place, in one round trip: planned against the row the
        previous step's outcome wrote, and recorded only if the row is still at that revision.
        None when it is not, or when the plan needs to read (the locked path decides then)."""
        assert claim.execution is not None
        with self.store.planning() as plan:
            if plan is None:
                return None
            status, values = steps.attempt_values(outcome, plan.now)
            # a Plan offers the transaction's `now` and `write`, and refuses any read
            unit = self._outcome_unit(cast(Tx, plan), claim.execution, claim, inline)
            try:
                result = steps.after_attempt(unit, claim, outcome, status)
                unit.save(last=True)
            except NeedsLock:
                return None
            revision = claim.execution.revision
            if not plan.apply(claim.execution_id, revision, claim.run_id, claim.worker, values):
                return None
        return self._finished(unit, claim, result)

    def _outcome_unit(self, tx: Tx, record: ExecutionRecord, claim: Claim, inline: str | None) -> Unit:
        definition = self.definitions.get(record.workflow_id)
        unit = Unit(tx, record, definition, self.settings, claim.worker, self.rng)
        if inline is not None:
            unit.inline = (claim.worker, inline)
        unit.capacity = self.capacity
        unit.carrier = claim.carrier
        return unit

    def capacity(self) -> int:
        """How many steps the live workers can run at once, as their heartbeats tell (0 when
        none is known); read at most once a heartbeat interval."""
        now = time.monotonic()
        if now >= self._capacity[1]:
            since = self.store.clock.now() - timedelta(seconds=self.settings.worker_lost_after)
            try:
                count = self.store.capacity(self.settings.steps_queue, since)
            except StoreError:
                log.warning("could not read the workers' capacity", exc_info=True)
                count = self._capacity[0]
            self._capacity = (count, now + self.settings.heartbeat_interval)
        return self._capacity[0]

    def _finished(self, unit: Unit, claim: Claim, result: str) -> Finished:
        """After the outcome's commit: publish, revoke, announce; the step to run in place."""
        self.after_commit(unit)
        following = self._continued(unit) if unit.continued else None
        if result == steps.DISCARDED:
            log.info(
                "result of %s:%s:%s discarded: no longer current",
                claim.execution_id,
                claim.step.name,
                claim.attempt,
            )
        return Finished(result, following)

    def _continued(self, unit: Unit) -> Claim:
        assert unit.continued is not None
        run_id, row = unit.continued
        return Claim(
            run_id=run_id,
            execution_id=unit.id,
            workflow=unit.record.workflow_name,
            version=unit.record.workflow_version,
            workflow_id=unit.record.workflow_id,
            attempt=row["attempt"],
            input=unit.record.input,
            metadata=unit.record.metadata,
            checkpoint=self._checkpoint_after(unit.id, row),
            worker=row["worker"],
            retries=unit.retries,
            due_at=row["queued_at"],
            started_at=row["started_at"],
            execution=unit.saved_record(),
            **self._placed(unit.definition, row["step_name"]),
        )

    def _checkpoint_after(self, execution_id: str, row: dict[str, Any]) -> Any:
        """The checkpoint a step taken after a committed outcome resumes from (a later attempt)."""
        if row["attempt"] <= 1:
            return None
        try:  # the outcome is committed already: a failed read must not make it look unrecorded
            with self.store.reading() as conn:
                return latest_checkpoint(conn, execution_id, row["step_name"])
        except StoreError:
            log.warning("checkpoint of %s:%s not read", execution_id, row["step_name"], exc_info=True)
            return None

    def save_checkpoint(self, run_id: int, data: Any) -> None:
        with self.store.transaction() as tx:
            tx.save_checkpoint(run_id, data)

    def is_cancelled(self, run_id: int) -> bool:
        """Whether the attempt should stop: cancelled, timed out, or reset."""
        with self.store.transaction() as tx:
            return not tx.still_running(run_id)

    def fire_timer(self, run_id: int, actor: str = "timer") -> bool:
        run = self._run(run_id)
        if run is None:
            return False
        with self.unit(run.execution_id, actor) as unit:
            return steps.fire_timer(unit, unit.runs.run(run_id) or run)

    # recovery, driven by the reconciler

    def recover_lost(self, run_id: int, actor: str = "reconciler") -> bool:
        run = self._run(run_id)
        if run is None:
            return False
        with self.unit(run.execution_id, actor) as unit:
            unit.carrier = unit.graph.has_siblings(run.step_name)  # it hands on for the lost branch
            fresh = unit.runs.run(run_id)
            return fresh is not None and steps.recover_lost(unit, fresh, self.settings.max_worker_losses)

    def time_out(self, run_id: int, actor: str = "reconciler") -> bool:
        run = self._run(run_id)
        if run is None:
            return False
        with self.unit(run.execution_id, actor) as unit:
            unit.carrier = unit.graph.has_siblings(run.step_name)  # it hands on for the branch
            fresh = unit.runs.run(run_id)
            return fresh is not None and steps.time_out(unit, fresh)

    def republish(self, runs: Sequence[StepRunRecord]) -> int:
        """Publish again runs whose message is overdue or was never sent."""
        dispatches = []
        for run in runs:
            record = self.store.get_execution(run.execution_id)
            step = self.definitions.get(record.workflow_id).step(run.step_name)
            dispatches.append(
                Dispatch.of(step, run.id, run.execution_id, record.workflow_name, run.attempt, run.not_before)
            )
        if dispatches:
            self.publish(dispatches)
        return len(dispatches)

    def repair(self, execution_id: str, actor: str = "reconciler") -> bool:
        """Re-plan an execution that has nothing running and nothing waiting, from its runs."""
        with self.unit(execution_id, actor) as unit:
            if unit.status != E.RUNNING:
                return False
            current = unit.recount()
            if unit.counts["active"] or unit.counts["waiting"]:
                return False
            states = {name: run.status for name, run in current.items()}
            changed = unit.replan(states, reason="re-planned by the reconciler")
            unit.settle()
            return changed or unit.status != E.RUNNING

    def _run(self, run_id: int) -> StepRunRecord | None:
        with self.store.transaction() as tx:
            return tx.run(run_id)

    # operators' verbs

    def pause(
        self, execution_id: str, actor: str, owner_id: int | None = None, reason: str | None = None
    ) -> None:
        with self.unit(execution_id, actor, owner_id) as unit:
            control.pause(unit, reason)

    def resume(self, execution_id: str, actor: str, owner_id: int | None = None) -> None:
        with self.unit(execution_id, actor, owner_id) as unit:
            control.resume(unit)

    def cancel(
        self, execution_id: str, actor: str, owner_id: int | None = None, reason: str | None = None
    ) -> None:
        with self.unit(execution_id, actor, owner_id) as unit:
            control.cancel(unit, reason)

    def retry(
        self, execution_id: str, actor: str, owner_id: int | None = None, from_step: str | None = None
    ) -> list[str]:
        with self.unit(execution_id, actor, owner_id) as unit:
            return control.retry(unit, from_step)

    def next_step(self, execution_id: str, actor: str, owner_id: int | None = None) -> str:
        with self.unit(execution_id, actor, owner_id) as unit:
            return control.next_step(unit)

    def complete_step(
        self,
        execution_id: str,
        step: str,
        data: Any,
        actor: str,
        owner_id: int | None = None,
        role: str | None = None,
    ) -> None:
        with self.unit(execution_id, actor, owner_id) as unit:
            control.complete_step(unit, step, data, actor, role)
