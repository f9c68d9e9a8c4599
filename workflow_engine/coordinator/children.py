"""Child executions: started once per place (parent, step, item), told of their parent's verbs,
and heard of when they end, each after the decision that asks for it has committed (the
reconciler repairs whatever a crash left between the two).

A child that its parent's worker runs in place starts in one statement from what the parent's
decision knew, and its end is told to the parent in one more, planned against the parent's row
(:mod:`workflow_engine.store.optimistic`); anything else goes through a transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from workflow_engine.coordinator.outbox import Outbox
from workflow_engine.coordinator.recording import DefinitionCache, Recorder, apply
from workflow_engine.core import descendants
from workflow_engine.core.states import TERMINAL_EXECUTION, ExecutionStatus, StepStatus
from workflow_engine.decisions import control, steps, workflow_steps
from workflow_engine.decisions.facts import Facts
from workflow_engine.decisions.runs import new_execution
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions.model import StepDefinition, StepType, WorkflowDefinition
from workflow_engine.errors import Conflict, ExecutionNotFound, InputError, InvalidOperation, WorkflowNotFound
from workflow_engine.outages import warn
from workflow_engine.secrets import Binding, handed_on
from workflow_engine.settings import Settings
from workflow_engine.store import lineages
from workflow_engine.store.optimistic import OptimisticWrite
from workflow_engine.store.records import ExecutionRecord, StepRunRecord, WorkflowRecord
from workflow_engine.store.repository import Store
from workflow_engine.store.seam import Unsupported
from workflow_engine.store.transaction import Tx

log = logging.getLogger(__name__)

E = ExecutionStatus
S = StepStatus
T = TypeVar("T")
CHILD_INPUT = "input of the child execution"  # (where a problem with it is)


class Deciding(Protocol):
    """What the children ask of the coordinator: its settings, decisions and verbs."""

    settings: Settings

    def decide(
        self,
        execution_id: str,
        actor: str,
        act: Callable[[Unit], T],
        owner_id: int | None = None,
        guard: Callable[[Tx], None] | None = None,
    ) -> T: ...

    def decided(
        self,
        tx: Tx | None,
        facts: Facts,
        actor: str,
        act: Callable[[Unit], T],
        in_place: tuple[str, str | None] | None = None,
    ) -> tuple[Unit, T]: ...

    def started_optimistically(
        self,
        plan: OptimisticWrite,
        values: dict[str, Any],
        actor: str,
        in_place: tuple[str, str | None] | None = None,
        waits: int | None = None,
    ) -> Unit | None: ...

    def sealed_input(
        self, definition: WorkflowDefinition, input_data: Any, where: str, to: Binding, carried: Binding
    ) -> Any: ...

    def pause(
        self, execution_id: str, actor: str, owner_id: int | None = None, reason: str | None = None
    ) -> None: ...

    def resume(self, execution_id: str, actor: str, owner_id: int | None = None) -> None: ...

    def retry(
        self, execution_id: str, actor: str, owner_id: int | None = None, from_step: str | None = None
    ) -> list[str]: ...


class Children:
    """The child executions of every parent this coordinator decides on (see the module)."""

    def __init__(
        self,
        coordinator: Deciding,
        store: Store,
        definitions: DefinitionCache,
        recorder: Recorder,
        outbox: Outbox,
    ) -> None:
        self.coordinator = coordinator
        self.store = store
        self.definitions = definitions
        self.recorder = recorder
        self.outbox = outbox

    def follow_up(self, unit: Unit, in_place: tuple[str, str | None] | None = None) -> Unit | None:
        """After ``unit``'s commit: its children started or synced, its verbs passed on, its
        parent told of its end. The first child's decision, when ``in_place``'s worker runs its
        first step in place."""
        ended = unit.status in TERMINAL_EXECUTION and unit.record.status not in TERMINAL_EXECUTION
        if not unit.children and not unit.cascades and unit.record.parent_execution_id is None:
            return None  # (most decisions: nothing follows them)
        saved = unit.saved_record() or unit.record
        handed: Unit | None = None
        for step, index in unit.children:
            try:
                # a step's first run, never retried: no child can exist yet; start it from what
                # the decision knows (whoever else started it meanwhile wins, then it is synced)
                run = unit.written_run(step, index)
                first = run is not None and run.step_type == StepType.WORKFLOW and run.status == S.RUNNING
                if first and not saved.retries:
                    assert run is not None
                    started = self.start(saved, step, index, run.input, 0, in_place, run)
                    if started is not None:
                        if started.continued is not None:
                            handed, in_place = started, None
                        continue
                self.sync(unit.id, step, index)
            except Exception as exc:  # one child must not stop the others: the reconciler repairs it
                warn(log, exc, "child of %s step %s[%s] not started", unit.id, step, index)
        for verb, which in unit.cascades:
            self.cascade(unit.id, verb, which, saved.retries)
        if unit.record.parent_execution_id is not None and ended:
            self.ended(unit.id, saved, unit.parent)
        return handed

    def sync(self, parent_id: str, step: str, index: int | None) -> bool:
        """Bring the child of ``step`` (its item ``index``) of ``parent_id`` in line with the run
        that waits for it: start it (once: its id is its place), retry it when a retry of the
        parent's step finds it failed, or tell the parent it ended. Whether anything was done."""
        with self.store.transaction() as tx:
            parent = tx.execution(parent_id)
            run = tx.workflow_run(parent_id, step, index)
            child, started = tx.latest_child(parent_id, step, index)
        if parent is None or run is None or parent.status in TERMINAL_EXECUTION:
            return False
        newer = child is not None and workflow_steps.opened_after(run, child)
        fresh = child is None or (newer and (child.status == E.CANCELLED or child.input != run.input))
        if not fresh and child is not None and child.status == E.FAILED and newer:
            try:
                self.coordinator.retry(child.id, f"parent {parent_id}")
                return True
            except InvalidOperation:  # it cannot run again from a step: a new child runs instead
                fresh = True
        if fresh:
            # (the step ran again with other input, or its child cannot run again: a new one)
            return self.start(parent, run.step_name, run.item_index, run.input, started) is not None
        assert child is not None
        if child.status in TERMINAL_EXECUTION:
            return self.ended(child.id)
        return False

    def start(
        self,
        parent: ExecutionRecord,
        step_name: str,
        index: int | None,
        child_input: Any,
        generation: int,
        in_place: tuple[str, str | None] | None = None,
        run: StepRunRecord | None = None,
    ) -> Unit | None:
        """Start the ``generation``-th child of ``step_name`` (its item ``index``) of ``parent``
        with ``child_input``, its first step run in place by ``in_place``'s worker when it may;
        the child's first decision, or None when it exists already (or was refused: its input
        does not fit, or its tree has started every child it may). ``run``: the parent's run
        that waits for it, as the parent's decision just wrote it."""
        step = self.definitions.get(parent.workflow_id).step(step_name)
        assert step.workflow is not None
        key = f"{parent.id}:{step_name}:{index}:{generation}"
        child_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"wfe-child:{key}"))
        if run is not None:
            planned = self._start_planned(parent, step, child_id, child_input, run, in_place)
            if planned is not None:
                return planned
        refused: str | None = None
        kind, code = "child_refused", None
        with self.store.transaction() as tx:  # one transaction: what to start, and starting it
            try:
                record = self.store.get_workflow(step.workflow, step.version, tx=tx)
                definition = self.definitions.get(record.id)
                bound = handed_on(parent.owner_id, parent.id, parent.parent_execution_id)  # (its tree's)
                child_input = self.coordinator.sealed_input(definition, child_input, CHILD_INPUT, *bound)
            except (WorkflowNotFound, InputError, Conflict) as exc:
                refused = str(exc)
            else:
                waiting = tx.workflow_run(parent.id, step_name, index)
                now_parent = tx.execution(parent.id)
                if waiting is None or now_parent is None or now_parent.status in TERMINAL_EXECUTION:
                    return None  # the step ended meanwhile (cancelled, reset): no child
                tx.now = max(tx.now, waiting.queued_at)  # (started after its run, whatever the clocks)
                values = _child_row(child_id, record, definition, parent, waiting, child_input, tx.now)
                inserted = self._insert(tx, now_parent, values)
                if inserted is False:
                    return None  # started already, by whoever got here first
                if isinstance(inserted, str):
                    refused, kind, code = inserted, descendants.KIND, descendants.CODE
                else:
                    facts = Facts(tx.now, ExecutionRecord(**values), outputs_of=None, runs=(), attempts={})
                    paused = now_parent.status == E.PAUSED
                    # (a child of a parent paused meanwhile is paused at once, below: not run in place)
                    unit, _ = self.coordinator.decided(
                        tx, facts, f"parent {parent.id}", steps.begin, None if paused else in_place
                    )
                    apply(tx, unit)
        if refused is not None:
            refuse = partial(
                workflow_steps.child_refused,
                step_name=step_name,
                index=index,
                message=refused,
                kind=kind,
                code=code,
            )
            self.coordinator.decide(parent.id, "system", refuse)
            return None
        self.outbox.after_commit(unit)
        if paused:  # its parent's pause did not see this child
            self.cascade(parent.id, "pause", step_name)
            return None
        return unit

    def _insert(self, tx: Tx, parent: ExecutionRecord, values: dict[str, Any]) -> bool | str:
        """Insert the child row ``values`` of ``parent`` if its tree may start one more child
        (counting it): True; False when it exists already; else why it may not start."""
        root = lineages.root_of(tx, parent)
        started, room = lineages.hold(tx, root, self.coordinator.settings.max_descendants)
        if not descendants.may_start(started, room):
            return False if tx.execution(values["id"]) is not None else descendants.refusal(root, room)
        if not tx.insert_child(values):
            return False
        lineages.count(tx, root)
        return True

    def _start_planned(
        self,
        parent: ExecutionRecord,
        step: StepDefinition,
        child_id: str,
        child_input: Any,
        run: StepRunRecord,
        in_place: tuple[str, str | None] | None,
    ) -> Unit | None:
        """The child of ``step`` started in one round trip besides reading its workflow, from
        what its parent's decision knew (its run ``run``, the parent running): its first
        decision, or None when that cannot be done (the decision reads, the parent no longer
        runs, the child is refused or exists): the transaction path decides then."""
        assert step.workflow is not None
        with self.store.optimistic() as plan:
            if isinstance(plan, Unsupported):
                return None
            try:
                record = self.store.get_workflow(step.workflow, step.version, tx=plan)
                definition = self.definitions.get(record.id)
                bound = handed_on(parent.owner_id, parent.id, parent.parent_execution_id)  # (its tree's)
                child_input = self.coordinator.sealed_input(definition, child_input, CHILD_INPUT, *bound)
            except (WorkflowNotFound, InputError, Conflict):
                return None
            now = max(plan.now, run.queued_at)
            values = _child_row(child_id, record, definition, parent, run, child_input, now)
            unit = self.coordinator.started_optimistically(
                plan, values, f"parent {parent.id}", in_place, run.id
            )
        if unit is not None:
            self.outbox.after_commit(unit)
        return unit

    def ended(
        self,
        child_id: str,
        child: ExecutionRecord | None = None,
        parent: tuple[ExecutionRecord, StepRunRecord] | None = None,
    ) -> bool:
        """A child execution ended: its parent's step (or map item) goes on from its outcome
        (``child``: its record, when known; ``parent``: the parent's row and run as the worker
        that started the child wrote them, to try first in one round trip)."""
        child = child or self.store.get_execution(child_id)
        if child.parent_execution_id is None or child.parent_step is None:
            return False
        if child.status not in TERMINAL_EXECUTION:
            return False
        if parent is not None and _waits_for(parent, child):
            told = self.recorder.child_ended(*parent, child)
            if told is not None:
                self.outbox.after_commit(told)
                return True
        step, index = child.parent_step, child.parent_index
        return bool(
            self.coordinator.decide(
                child.parent_execution_id,
                f"child {child.id}",
                lambda unit: workflow_steps.child_ended(unit, step, index, child),
            )
        )

    def cascade(self, parent_id: str, verb: str, step: str | None, retries: int | None = None) -> None:
        """Pass a parent's pause, resume or cancel on to its children that can take it. A cancel
        decided when the parent had been retried ``retries`` times is not passed on once it has
        been retried again: the children running then are its retry's."""
        takes = {
            "pause": (E.RUNNING, E.WAITING),
            "resume": (E.PAUSED,),
            "cancel": (E.RUNNING, E.WAITING, E.PAUSED, E.INITIALIZED),
        }[verb]
        actor = f"parent {parent_id}"
        for child in self.store.children(parent_id, step, takes):
            try:
                if verb == "pause":
                    self.coordinator.pause(child.id, actor, reason="parent paused")
                elif verb == "resume":
                    self.coordinator.resume(child.id, actor)
                else:
                    self.coordinator.decide(
                        child.id,
                        actor,
                        lambda unit: control.cancel(unit, "parent stopped"),
                        guard=None if retries is None else partial(_not_retried, parent_id, retries),
                    )
            except (Conflict, ExecutionNotFound):  # (it changed since it was listed, or is gone)
                log.info("child %s of %s did not take %s", child.id, parent_id, verb)


def _not_retried(parent_id: str, retries: int, tx: Tx) -> None:
    parent = tx.execution(parent_id)
    if parent is None or parent.retries != retries:
        raise InvalidOperation(f"execution {parent_id} was retried since")


def _child_row(
    child_id: str,
    record: WorkflowRecord,
    definition: WorkflowDefinition,
    parent: ExecutionRecord,
    run: StepRunRecord,
    child_input: Any,
    now: datetime,
) -> dict[str, Any]:
    """The row of the child execution that ``run`` of ``parent`` waits for, of ``record``'s
    workflow, started ``now``: its owner, mode and metadata are its parent's."""
    owner, mode, metadata = parent.owner_id, parent.mode, parent.metadata
    values = new_execution(child_id, record, owner, mode, child_input, metadata, None, now)
    values.update(
        total_steps=len(definition.steps),
        parent_execution_id=parent.id,
        parent_step=run.step_name,
        parent_index=run.item_index,
        depth=parent.depth + 1,
    )
    return values


def _waits_for(parent: tuple[ExecutionRecord, StepRunRecord], child: ExecutionRecord) -> bool:
    """Whether the parent's row and run ``parent`` are those that ``child`` ended for."""
    record, run = parent
    place = (child.parent_execution_id, child.parent_step, child.parent_index)
    return (record.id, run.execution_id, run.step_name, run.item_index) == (place[0], *place)
