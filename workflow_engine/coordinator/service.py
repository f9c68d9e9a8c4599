"""The coordinator: starts executions, hands step attempts to workers, records what they report,
and applies operators' verbs. Every decision is one transaction on a locked execution; the
messages it implies are published after the commit (see :mod:`workflow_engine.decisions.unit`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any, TypeVar

from workflow_engine.coordinator import concurrency
from workflow_engine.coordinator.children import Children
from workflow_engine.coordinator.outbox import Outbox
from workflow_engine.coordinator.rates import Rates
from workflow_engine.coordinator.recording import DefinitionCache, Recorder, apply, loader
from workflow_engine.core import quotas
from workflow_engine.core.secrets import Opened, has_sealed
from workflow_engine.core.states import TERMINAL_EXECUTION, ExecutionMode, ExecutionStatus, StepStatus
from workflow_engine.decisions import control, steps, waiting
from workflow_engine.decisions.dispatch import Dispatch, Dispatcher
from workflow_engine.decisions.facts import Facts, Missing
from workflow_engine.decisions.outcomes import Claim, Finished, Outcome
from workflow_engine.decisions.runs import new_execution
from workflow_engine.decisions.steps import decide, unread
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.definitions.schemas import check_data, check_payload
from workflow_engine.definitions.validation import unknown_agents
from workflow_engine.errors import (
    Conflict,
    DefinitionError,
    ExecutionNotFound,
    ExpressionError,
    InputError,
    Problem,
)
from workflow_engine.events import EventBus
from workflow_engine.secrets import Binding, KeyMissing, Keyring
from workflow_engine.settings import Settings
from workflow_engine.store import quotas as counted
from workflow_engine.store.optimistic import OptimisticWrite
from workflow_engine.store.records import ExecutionRecord, StepRunRecord
from workflow_engine.store.repository import Store
from workflow_engine.store.sealed import tree_of
from workflow_engine.store.seam import Unsupported
from workflow_engine.store.transaction import Tx

log = logging.getLogger(__name__)

E = ExecutionStatus
S = StepStatus
MODES = tuple(ExecutionMode)
AgentCatalog = Callable[[], Collection[str] | None]
T = TypeVar("T")


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
        keys = settings.encryption_keys
        self.keys = Keyring(keys.get_secret_value() if keys else None, partial(tree_of, store))
        self.outbox = Outbox(store, dispatcher, self.events)
        self.rates = Rates(store, self.definitions, dispatcher)
        self.recorder = Recorder(
            store,
            self.definitions,
            settings,
            self.events,
            self.rng,
            self.outbox,
            self.rates.admit,
            self._opened,
        )
        self.slots = concurrency.Slots(store, self.definitions, self.decided, self.outbox)
        self.children = Children(self, store, self.definitions, self.recorder, self.outbox)
        self.outbox.follow_up = self._follow_up
        self.quotas = quotas.Quotas.of(settings)

    # deciding

    def decide(
        self,
        execution_id: str,
        actor: str,
        act: Callable[[Unit], T],
        owner_id: int | None = None,
        guard: Callable[[Tx], None] | None = None,
    ) -> T:
        """Lock ``execution_id``, let ``act`` decide on its unit (see
        :func:`~workflow_engine.decisions.steps.decide`), write the changes and commit, then publish
        what it decided. What ``act`` returned. ``guard`` reads what else must hold once the
        execution is locked, raising InvalidOperation when it does not."""
        with self.store.transaction() as tx:
            record = tx.lock_execution(execution_id, owner_id)
            if record is None:
                raise ExecutionNotFound(execution_id)
            if guard is not None:
                guard(tx)
            unit, result = self.decided(tx, Facts(tx.now, record), actor, act)
            apply(tx, unit)
        self.outbox.after_commit(unit)
        return result

    def decided(
        self,
        tx: Tx | None,
        facts: Facts,
        actor: str,
        act: Callable[[Unit], T],
        in_place: tuple[str, str | None] | None = None,
    ) -> tuple[Unit, T]:
        definition = self.definitions.get(facts.record.workflow_id)

        def make(known: Facts, rng: random.Random) -> Unit:
            unit = Unit(known, definition, self.settings, actor, rng)
            unit.opener = self._opened
            unit.in_place = in_place  # (a child's first step may run in place: see _follow_up)
            return unit

        load = unread if tx is None else loader(tx, facts.record.id)
        return decide(facts, make, act, load, self.rng.getrandbits(64))

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
        on_insert: Callable[[Tx, str], None] | None = None,
        sealed_by: Binding | None = None,
    ) -> ExecutionRecord:
        """Create an execution and dispatch its first steps; the same idempotency key (per owner)
        returns the execution it started first. ``visible_to`` limits which workflows may be run
        (None: any); ``on_insert`` writes what must commit with a new execution (given its id);
        ``sealed_by``: what the sealed values of ``input_data`` are bound to (a schedule's, when
        it fires: no one else may give sealed values)."""
        owner = owner_id if owner_id is not None else self.store.system_user_id()
        execution_id = str(uuid.uuid4())
        started: Unit | None = None
        with self.store.optimistic() as plan:
            counting = self._counting(owner)  # (read with the version: no round trip of its own)
            on = None if isinstance(plan, Unsupported) else plan
            record, row = self.store.workflow_with(workflow, version, visible_to, on, counting)
            if counting:
                self._admit(counted.usage_of(row))
            definition = self.definitions.get(record.id)
            bound = (Binding.execution(owner, execution_id), sealed_by)
            data, meta = self._checked(definition, input_data, metadata, mode, idempotency_key, *bound)
            key = concurrency.key_of(definition, data, meta)
            if not isinstance(plan, Unsupported) and key is None and on_insert is None:
                # nothing to read first: one statement (a key used already inserts nothing)
                values = new_execution(
                    execution_id, record, owner, mode, data, meta, idempotency_key, plan.now
                )
                values["total_steps"] = len(definition.steps)
                started = self.started_optimistically(plan, values, actor)
        if started is not None:
            self.outbox.after_commit(started)
            return _as_left(started) or self.store.get_execution(execution_id)
        oldest: str | None = None
        with self.store.pipelined() as tx:
            if idempotency_key is not None:
                existing = tx.execution_by_key(owner, idempotency_key)
                if existing is not None:
                    return self._same_request(existing, record.id, idempotency_key)
            values = new_execution(execution_id, record, owner, mode, data, meta, idempotency_key, tx.now)
            values["total_steps"] = len(definition.steps)
            values["concurrency_key"] = key
            act: Callable[[Unit], Any] = steps.begin
            if key is not None:  # (it starts once its key is held: the time moves on to then)
                act, oldest = concurrency.admission(tx, definition, key, execution_id, self.store.clock)
            # a new execution: everything about it is known
            facts = Facts(tx.now, ExecutionRecord(**values), outputs_of=None, runs=(), attempts={})
            unit, _ = self.decided(tx, facts, actor, act)
            ids: list[int] | None = None
            if unit.writes_only_itself():  # (its row inserted as the decision leaves it)
                last = on_insert is None and idempotency_key is None
                ids = tx.start(values, unit.row_values() or {}, unit.new, unit.events, last=last)
                inserted = ids is not None
            else:
                inserted = tx.insert_execution(values)
            if not inserted:
                existing = tx.execution_by_key(owner, idempotency_key or "")
                assert existing is not None
                return self._same_request(existing, record.id, idempotency_key or "")
            if on_insert is not None:
                on_insert(tx, execution_id)
            if ids is None:
                apply(tx, unit, last=True)
            else:
                unit.inserted(ids)
        self.outbox.after_commit(unit)
        if oldest is not None:  # cancel_in_progress: the new one starts in the slot this frees
            reason = "concurrency limit: a newer execution takes its slot (strategy cancel_in_progress)"
            with contextlib.suppress(Conflict, ExecutionNotFound):
                self.cancel(oldest, "concurrency", reason=reason)
        elif key is not None and unit.status == E.INITIALIZED:
            self.slots.release(key)  # (older ones were waiting: they go first if a slot is free)
        else:
            return _as_left(unit) or self.store.get_execution(execution_id)
        return self.store.get_execution(execution_id)

    def started_optimistically(
        self,
        plan: OptimisticWrite,
        values: dict[str, Any],
        actor: str,
        in_place: tuple[str, str | None] | None = None,
        waits: int | None = None,
    ) -> Unit | None:
        """The execution ``values`` (a new row) started in one statement by ``plan`` (a child, if
        the parent's run ``waits`` still waits for it), its first decision made from its row
        alone: that decision (to publish once the plan is done with); None when it must read,
        or the row was not inserted."""
        record = ExecutionRecord(**values)  # (decided as of its creation)
        facts = Facts(record.created_at, record, outputs_of=None, runs=(), attempts={})
        try:
            unit, _ = self.decided(None, facts, actor, steps.begin, in_place)
        except Missing:
            return None
        if not unit.writes_only_itself():
            return None
        ids = plan.reserve(len(unit.new))
        if not plan.start(values, unit.row_values() or {}, (unit.new, unit.events, ids), waits):
            return None
        unit.inserted(ids)
        return unit

    def _checked(
        self,
        definition: Any,
        input_data: Any,
        metadata: Any,
        mode: str,
        idempotency_key: str | None,
        to: Binding,
        carried: Binding | None,
    ) -> tuple[Any, dict[str, Any]]:
        """A start request's input and metadata, checked; any problem is one clear error."""
        data = self.sealed_input(definition, input_data, "input_data", to, carried)
        meta = {} if metadata is None else metadata
        if not isinstance(meta, dict):
            raise InputError("metadata", [Problem("", "must be a JSON object")])
        check_payload(meta, "metadata")
        size = quotas.json_size(data) + quotas.json_size(meta)
        limit = self.quotas.input_bytes
        too_large = quotas.size_refusal("input_data and metadata", size, limit, "WFE_MAX_INPUT_BYTES")
        if too_large is not None:
            raise too_large
        if mode not in MODES:
            raise InputError("mode", [Problem("", f"must be one of {', '.join(MODES)}")])
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
            raise InputError("idempotency_key", [Problem("", "must be 1 to 255 characters")])
        self._check_agents(definition)
        return data, meta

    def _counting(self, owner: int) -> tuple[Any, ...]:
        """What a start of ``owner``'s must count for its quotas (nothing for the deployment's own
        starts, or without quotas on starts)."""
        if not self.quotas.limits_starts or owner == self.store.system_user_id():
            return ()
        return counted.usage_columns(owner, self.quotas, self.store.clock.now())

    def _admit(self, usage: quotas.StartUsage) -> None:
        """Refuse a start its owner's quotas do not allow (see core/quotas.py)."""
        refusal = quotas.start_refusal(usage, self.quotas, self.store.clock.now())
        if refusal is not None:
            raise refusal

    def sealed_input(
        self,
        definition: WorkflowDefinition,
        input_data: Any,
        where: str,
        to: Binding,
        carried: Binding | None = None,
    ) -> Any:
        """An execution's (or a schedule's) input, checked against the workflow's schema, with
        its secrets sealed for ``to``. Only the engine gives sealed values: those bound to
        ``carried`` (a schedule's input, a parent's values) are bound to ``to`` (sealed again, but
        for a child's, which its tree's binding covers) and checked opened; from anyone else, one
        is refused (see check_payload)."""
        data = {} if input_data is None else input_data
        if carried is not None and has_sealed(data):
            try:  # (a child's stay as they are: they are its tree's already)
                data = data if carried == to else self.keys.rebound(data, carried, to)
            except KeyMissing as error:
                raise InputError(where, [Problem("", error.message)]) from None
            check_data(definition.input_schema, self._opened(data, to), where)
        else:
            check_data(definition.input_schema, data, where)
        return self._sealed(definition, definition.secret_paths.input, data, to=to)

    def _opened(self, value: Any, where: ExecutionRecord | Binding | None = None) -> Any:
        """``value`` with its secrets opened for a condition or a check to read (the execution
        ``where``'s: one bound elsewhere, or that no key opens, fails the condition); a mapping
        is an Opened scope, whose errors never show the secrets' texts."""
        texts: dict[str, Any] = {}
        try:
            if where is None:
                raise KeyMissing("a sealed value was read with nothing to say whose it is")
            bound = where if isinstance(where, Binding) else Binding.execution(*_place(where))
            opened = self.keys.bound(bound).opened(value, texts) if self.keys else value
        except KeyMissing as error:
            raise ExpressionError(error.message) from None
        return Opened(opened, texts) if isinstance(opened, dict) else opened

    def _sealed(
        self, definition: WorkflowDefinition, paths: Sequence[tuple[str, ...]], data: Any, *, to: Binding
    ) -> Any:
        """``data`` with its secrets at ``paths`` sealed for ``to`` (shown nowhere else in it);
        refused when the workflow declares secrets and no key is configured."""
        if definition.secret_paths and not self.keys:
            raise Conflict(
                f"workflow {definition.name} {definition.version} declares secrets and no encryption"
                " key is configured: set WFE_ENCRYPTION_KEYS (make one with `wfe keys new`)"
            )
        return self.keys.bound(to).sealed(data, paths, {}) if paths else data

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

    # worker-facing: see coordinator.recording

    def claim(
        self, run_id: int, worker: str, task_id: str | None = None, rated: bool = False
    ) -> Claim | None:
        """Take a queued attempt for ``worker`` (see :meth:`Recorder.claim`)."""
        return self.recorder.claim(run_id, worker, task_id, rated)

    def finish(self, claim: Claim, outcome: Outcome, in_place: str | None = None) -> Finished:
        """Record what the attempt gave and what follows (see :meth:`Recorder.record`)."""
        return self.recorder.record(claim, outcome, in_place)

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

        def fire(unit: Unit) -> bool:
            fresh = unit.runs.find(run_id)  # None: reset by a retry meanwhile
            return fresh is not None and steps.fire_timer(unit, fresh)

        return self.decide(run.execution_id, actor, fire)

    # recovery, driven by the reconciler

    def recover_lost(self, run_id: int, actor: str = "reconciler") -> bool:
        run = self._run(run_id)
        if run is None:
            return False

        def recover(unit: Unit) -> bool:
            # it hands on for the lost branch (or item)
            unit.carrier = run.item_index is not None or unit.graph.has_siblings(run.step_name)
            fresh = unit.runs.find(run_id)
            return fresh is not None and steps.recover_lost(unit, fresh, self.settings.max_worker_losses)

        return self.decide(run.execution_id, actor, recover)

    def time_out(self, run_id: int, actor: str = "reconciler") -> bool:
        run = self._run(run_id)
        if run is None:
            return False

        def end(unit: Unit) -> bool:
            unit.carrier = run.item_index is not None or unit.graph.has_siblings(run.step_name)
            fresh = unit.runs.find(run_id)
            return fresh is not None and steps.time_out(unit, fresh)

        return self.decide(run.execution_id, actor, end)

    def republish(self, runs: Sequence[StepRunRecord]) -> int:
        """Publish again runs whose message is overdue or was never sent."""
        dispatches = []
        for run in runs:
            record = self.store.get_execution(run.execution_id)
            step = self.definitions.get(record.workflow_id).step(run.step_name)
            dispatches.append(
                Dispatch.of(
                    step,
                    run.id,
                    run.execution_id,
                    record.workflow_name,
                    run.attempt,
                    run.not_before,
                    run.item_index,
                )
            )
        if dispatches:
            self.outbox.publish(dispatches)
        return len(dispatches)

    def repair(self, execution_id: str, actor: str = "reconciler") -> bool:
        """Re-plan an execution that has nothing running and nothing waiting, from its runs."""

        def replan(unit: Unit) -> bool:
            if unit.status != E.RUNNING:
                return False
            current = unit.recount()
            if unit.counts["active"] or unit.counts["waiting"]:
                return False
            states = {name: run.status for name, run in current.items()}
            changed = unit.replan(states, reason="re-planned by the reconciler")
            unit.settle()
            return changed or unit.status != E.RUNNING

        return self.decide(execution_id, actor, replan)

    def _follow_up(self, unit: Unit, in_place: tuple[str, str | None] | None = None) -> Unit | None:
        """After ``unit``'s commit: the concurrency slot it freed taken, its children followed
        (see Children.follow_up)."""
        ended = unit.status in TERMINAL_EXECUTION and unit.record.status not in TERMINAL_EXECUTION
        if ended and unit.record.concurrency_key is not None:
            self.slots.freed(unit.record.concurrency_key)
        return self.children.follow_up(unit, in_place)

    def _run(self, run_id: int) -> StepRunRecord | None:
        with self.store.transaction() as tx:
            return tx.run(run_id)

    # operators' verbs

    def pause(
        self, execution_id: str, actor: str, owner_id: int | None = None, reason: str | None = None
    ) -> None:
        self.decide(execution_id, actor, lambda unit: control.pause(unit, reason), owner_id)

    def resume(self, execution_id: str, actor: str, owner_id: int | None = None) -> None:
        self.decide(execution_id, actor, control.resume, owner_id)

    def cancel(
        self, execution_id: str, actor: str, owner_id: int | None = None, reason: str | None = None
    ) -> None:
        self.decide(execution_id, actor, lambda unit: control.cancel(unit, reason), owner_id)

    def retry(
        self, execution_id: str, actor: str, owner_id: int | None = None, from_step: str | None = None
    ) -> list[str]:
        record = self.store.get_execution(execution_id)
        if record.status in TERMINAL_EXECUTION and owner_id in (None, record.owner_id):
            # children still stopping with it (their cancel follows its end) are stopped first:
            # what runs when the retry's runs look for their children is the retry's
            self.children.cascade(execution_id, "cancel", None, record.retries)
        return self.decide(execution_id, actor, lambda unit: control.retry(unit, from_step), owner_id)

    def migrate(self, execution_id: str, version: str, actor: str, owner_id: int | None = None) -> str:
        """Move an execution to ``version`` of its workflow (see control.migrate); the version
        it left."""
        record = self.store.get_execution(execution_id, owner_id)  # (someone else's: not found)
        target = self.store.get_workflow(record.workflow_name, version)
        definition = self.definitions.get(target.id)
        return self.decide(
            execution_id, actor, lambda unit: control.migrate(unit, definition, target.id), owner_id
        )

    def next_step(self, execution_id: str, actor: str, owner_id: int | None = None) -> str:
        return self.decide(execution_id, actor, control.next_step, owner_id)

    def complete_step(
        self,
        execution_id: str,
        step: str,
        data: Any,
        actor: str,
        owner_id: int | None = None,
        role: str | None = None,
    ) -> None:
        def complete(unit: Unit) -> None:
            seal = self._sealer(unit, unit.definition.secret_paths.outputs.get(step, ()))
            control.complete_step(unit, step, data, actor, role, seal)

        self.decide(execution_id, actor, complete, owner_id)

    def signal(
        self, execution_id: str, name: str, data: Any, actor: str, owner_id: int | None = None
    ) -> str | None:
        """Send the signal ``name``: the wait step that took it (None: kept for a later one,
        within the execution's quota of kept signals)."""
        size = quotas.json_size(data)
        limit = self.quotas.output_bytes
        too_large = quotas.size_refusal(f"data for signal {name!r}", size, limit, "WFE_MAX_OUTPUT_BYTES")
        if too_large is not None:
            raise too_large
        kept: list[tuple[int, int]] = []

        def count(tx: Tx) -> None:
            kept.append(counted.kept_signals(tx, execution_id))

        def send(unit: Unit) -> str | None:
            outputs = unit.definition.secret_paths.outputs
            paths = [path for step in unit.definition.listening(name) for path in outputs.get(step.name, ())]
            took = waiting.send_signal(unit, name, data, actor, self._sealer(unit, paths))
            refusal = quotas.signal_refusal(*kept[-1], size, self.quotas) if took is None else None
            if refusal is not None:
                raise refusal
            return took

        return self.decide(execution_id, actor, send, owner_id, guard=count)

    def _sealer(self, unit: Unit, paths: Sequence[tuple[str, ...]]) -> Callable[[Any], Any]:
        """How data given to ``unit``'s execution has its secrets at ``paths`` sealed, for it."""
        to = Binding.execution(*_place(unit.record))
        return partial(self._sealed, unit.definition, paths, to=to)


def _place(record: ExecutionRecord) -> tuple[int, str, str | None]:
    """Whose an execution's values are: its owner, itself and its parent (see Binding)."""
    return record.owner_id, record.id, record.parent_execution_id


def _as_left(unit: Unit) -> ExecutionRecord | None:
    """A new execution's row as its first decision wrote it, when nothing that followed the
    commit can have moved it (no child started, no verb passed on); None: read it again."""
    if unit.children or unit.cascades:
        return None
    return unit.saved_record() or unit.record
