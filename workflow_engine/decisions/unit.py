"""A decision about one execution, made from plain data.

Everything the coordinator decides about an execution is decided on a :class:`Unit`: it applies
execution transitions (through the state machine), creates and changes step runs, records
events, keeps the execution's counters and join barriers, asks the planner what comes next, and
says what to publish and which tasks to revoke once the changes are committed (the outbox). It
does no I/O: it decides from :class:`~workflow_engine.decisions.facts.Facts` and raises
:class:`~workflow_engine.decisions.facts.Missing` for what it was not given;
:func:`~workflow_engine.decisions.steps.decide` decides again once the caller has loaded
it, and :func:`~workflow_engine.coordinator.recording.apply` hands the changes to the store.
:class:`Runs` (below) is the execution's runs as the decision leaves them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from workflow_engine.core import mapping, planner
from workflow_engine.core.expressions import Budget, Expression
from workflow_engine.core.graph import Edge
from workflow_engine.core.secrets import has_sealed
from workflow_engine.core.states import (
    OPEN_STEP,
    TERMINAL_EXECUTION,
    ExecutionMode,
    ExecutionStatus,
    StepStatus,
    check_step_update,
    check_transition,
)
from workflow_engine.decisions.dispatch import Dispatch, task_id
from workflow_engine.decisions.facts import ATTEMPTS, RUNS, Facts, Missing, Tuning
from workflow_engine.decisions.runs import BUCKETS, counters_of, fire_at, took_signal, waiting_reason
from workflow_engine.definitions.model import WORKER_STEPS, StepDefinition, StepType, WorkflowDefinition
from workflow_engine.errors import ExpressionError
from workflow_engine.store.records import RUN_IN_PLACE, ExecutionRecord, StepRunRecord, event_row, input_of

log = logging.getLogger(__name__)


E = ExecutionStatus
S = StepStatus
_RECORD_FIELDS = frozenset(f.name for f in fields(StepRunRecord))


def new_run(execution_id: str, now: datetime, step: StepDefinition, attempt: int) -> dict[str, Any]:
    """A new run with every column set (rows are written together, in one statement)."""
    return {
        "execution_id": execution_id,
        "step_name": step.name,
        "step_type": step.type.value,
        "agent": step.agent,
        "attempt": attempt,
        "status": S.PENDING,
        "superseded": False,
        "carried": False,
        "timeout": step.timeout,
        "error_type": None,
        "error_message": None,
        "error_code": None,
        "output": None,
        "duration_ms": None,
        "worker": None,
        "task_id": None,
        "completed_by": None,
        "input": None,
        "queued_at": now,
        "not_before": None,
        "published_at": None,
        "started_at": None,
        "heartbeat_at": None,
        "finished_at": None,
        "item_index": None,
        "item": None,
    }


class Unit:
    """One decision about one execution: its changes accumulate, and are written in one go."""

    def __init__(
        self,
        facts: Facts,
        definition: WorkflowDefinition,
        settings: Tuning,
        actor: str,
        rng: random.Random | None = None,
        *,
        opener: Callable[..., Any] | None = None,
        in_place: tuple[str, str | None] | None = None,
        carrier: bool = False,
        parent: tuple[ExecutionRecord, StepRunRecord] | None = None,
    ) -> None:
        self.facts = facts
        self.record = record = facts.record
        self.id = record.id
        self.now = facts.now
        self.step_mode = record.mode == ExecutionMode.STEP
        self.definition = definition
        self.graph = definition.graph
        self.settings = settings
        self.actor = actor
        self.rng = rng or random.Random()
        self.status: str = record.status
        self.counts = {
            "active": record.active_steps,
            "waiting": record.waiting_steps,
            "resolved": record.resolved_steps,
        }
        self.retries = record.retries
        self.barriers: dict[str, list[int]] = (
            {k: list(v) for k, v in record.barriers.items()} if record.barriers else {}
        )
        self.changes: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.dispatches: list[Dispatch] = []
        self.revocations: list[tuple[str, bool]] = []
        self.known_outputs: dict[str, Any] = {}
        # decrypts the secrets a condition reads (None: nothing is encrypted, or no key)
        self.opener = opener
        # the runs this decision creates: written with the rest of it (one statement on PostgreSQL)
        self.new: list[dict[str, Any]] = []
        self.runs = Runs(facts, self.new)  # the execution's runs as this decision leaves them
        self.dirty = False
        # set by a worker that can run the next step in place (see decisions.delivery)
        self.in_place = in_place  # (worker, carrier task id)
        self.carrier = carrier  # the step reporting is a branch whose siblings may be carried
        self.continued: tuple[int, dict[str, Any]] | None = None
        # a carried sibling to take once the changes are applied: (worker, carrier task id) to
        # run it in place, (None, None) to publish it
        self.take: tuple[str | None, str | None] | None = None
        self.written: dict[str, Any] | None = None  # what row_values() gave the execution's row
        # map steps: their items' counts (see core.mapping), the own runs of map and workflow
        # steps opened but not started yet (decisions.maps starts them), and item outputs
        # this decision knows
        self.maps: dict[str, dict[str, int]] = (
            {k: dict(v) for k, v in record.maps.items()} if record.maps else {}
        )
        self.opening: list[dict[str, Any]] = []
        self.item_outputs: dict[tuple[str, int], Any] = {}
        # after the commit: the child executions to start or look at, as (step, item index),
        # and the verbs to pass on to children, as (verb, step or None for every step)
        self.children: list[tuple[str, int | None]] = []
        self.cascades: list[tuple[str, str | None]] = []
        # signals: the rows of those this decision keeps, and the kept ones its wait steps take
        # as (signal id, step, attempt)
        self.signals_sent: list[dict[str, Any]] = []
        self.signals_taken: list[tuple[int, str, int]] = []
        self.new_ids: list[int] = []  # the ids the new runs were written under
        # of a child execution run in place by the worker that started it: its parent's row as
        # that worker last wrote it, and the parent's run that waits for this child (its end is
        # then told to the parent in one round trip: see Recorder.child_ended)
        self.parent = parent

    @cached_property
    def budget(self) -> Budget:
        """Shared by every expression this unit evaluates."""
        return Budget()

    def inserted(self, ids: Sequence[int]) -> None:
        """The new runs are written under ``ids`` and are in the outbox: those marked published
        go to the broker after the commit."""
        self.new_ids = list(ids)
        for run_id, row in zip(ids, self.new, strict=True):
            if row["status"] == S.RUNNING and row["worker"] is not None:
                # (the row keeps only its own input; its agent gets the execution's otherwise)
                self.continued = (run_id, {**row, "input": input_of(row["input"], self.record.input)})
            elif row["published_at"] is not None and not row["carried"]:
                step = self.definition.steps_by_name[row["step_name"]]
                dispatch = Dispatch.of(
                    step, run_id, self.id, self.record.workflow_name, row["attempt"], row["not_before"],
                    row["item_index"], self.now,
                )
                self.dispatches.append(dispatch)

    # state and history

    def transition(self, to: ExecutionStatus, reason: str | None = None, details: Any = None) -> None:
        """Move the execution to ``to`` if the state machine allows it, and record the event."""
        check_transition(self.status, to)
        previous, self.status = self.status, to
        self.event(None, None, previous, to, reason, details)
        if to == E.RUNNING and self.record.started_at is None:
            self.changes.setdefault("started_at", self.now)
        if to in TERMINAL_EXECUTION:
            self.changes["finished_at"] = self.now
        elif previous == E.FAILED:
            self.changes.update(finished_at=None, error=None)
        self.dirty = True

    def event(
        self,
        step: str | None,
        attempt: int | None,
        previous: str | None,
        to: str,
        reason: str | None = None,
        details: Any = None,
        actor: str | None = None,
    ) -> None:
        self.events.append(
            event_row(self.id, step, attempt, previous, to, actor or self.actor, self.now, reason, details)
        )
        self.dirty = True

    def count(self, step_type: str, previous: str | None, new: str) -> None:
        """Keep the counters right as a run moves from ``previous`` (None: new run) to ``new``
        (see :func:`~workflow_engine.decisions.runs.bucket`)."""
        timer = step_type == StepType.TIMER
        if previous is not None and (old := BUCKETS[previous, timer]):
            self.counts[old] -= 1
        if (fresh := BUCKETS[new, timer]) is not None:
            self.counts[fresh] += 1

    def moved(self, run: StepRunRecord, previous: str, new: str) -> None:
        """Keep the counters right as an existing run moves: a step's counts toward the
        execution's, a map item's toward its map's."""
        if run.item_index is None:
            self.count(run.step_type, previous, new)
        elif run.step_name in self.maps:
            mapping.moved(self.maps[run.step_name], previous, new)
            self.changes["maps"] = self.maps

    def recount(self) -> dict[str, StepRunRecord]:
        """Recompute the counters from the runs (after resets); the current run of each step."""
        current = self.runs.current()
        self.counts = counters_of(current.values())
        self.dirty = True
        return current

    # opening, skipping and resolving steps

    def open(self, names: Sequence[str], reason: str | None = None) -> None:
        """Create the next run of each step; agent steps go to the outbox unless held back."""
        if not names or self.status in TERMINAL_EXECUTION:
            return
        attempts = self.runs.next_attempts(names, reset=bool(self.retries))
        held = self.status == E.PAUSED or self.step_mode
        why_held = "held: execution paused" if self.status == E.PAUSED else "held: step mode"
        opened: list[tuple[dict[str, Any], str | None]] = []  # each new run, what its history says
        broken: dict[str, dict[str, Any]] = {}
        for name in names:
            step = self.definition.steps_by_name[name]
            row = new_run(self.id, self.now, step, attempts[name])
            why = why_held if held else None
            if step.type is StepType.HUMAN:
                row.update(status=S.WAITING, started_at=self.now)
                why = f"human task for {', '.join(step.assignees) or 'any operator'}"
            elif step.type is StepType.TIMER:
                try:
                    fires = fire_at(step, self.now, self.evaluate)
                except ExpressionError as exc:
                    broken[name] = self.unevaluable(row, f"until: {exc}")
                    why = None
                else:
                    row.update(status=S.WAITING, started_at=self.now)
                    self.wait_until(row, fires)
                    why = f"timer fires at {fires.isoformat()}"
            elif step.type is StepType.WAIT:  # it takes the oldest signal kept for it, or waits
                assert step.waits_for is not None
                taken = {signal_id for signal_id, _, _ in self.signals_taken}
                kept = [s for s in self.facts.kept_signals(step.waits_for) if s.id not in taken]
                if kept:
                    self.signals_taken.append((kept[0].id, step.name, row["attempt"]))
                    took_signal(row, kept[0], self.now)
                    sender = row.get("completed_by") or "an operator"
                    why = f"took signal {step.waits_for!r} sent by {sender}"
                else:
                    row.update(status=S.WAITING, started_at=self.now)
                    why = f"waiting for signal {step.waits_for!r}"
                    if step.timeout is not None:
                        self.wait_until(row, self.now + timedelta(seconds=step.timeout))
                        why += f" until {row['not_before'].isoformat()}"
            elif step.type is StepType.TASK and (error := self.task_arguments(step, row)) is not None:
                broken[name] = error
                why = None
            elif step.type in (StepType.MAP, StepType.WORKFLOW):
                # it runs (its items, its child) once decisions.maps has started it
                row.update(status=S.PENDING if held else S.RUNNING, started_at=None if held else self.now)
                if not held:
                    self.opening.append(row)
            else:
                row.update(status=S.PENDING if held else S.QUEUED, published_at=None if held else self.now)
            opened.append((row, reason or why))
        for row, why in opened:
            step = self.definition.steps_by_name[row["step_name"]]
            self.new.append(row)
            self.count(step.type, None, row["status"])
            if step.type is StepType.MAP and row["status"] == S.RUNNING:
                continue  # its history starts with what its items are (decisions.maps)
            self.event(step.name, row["attempt"], None, row["status"], why)
        for name, error in broken.items():
            self.step_failed(name, error)
        for row, _ in opened:
            if row["step_type"] == StepType.WAIT and row["status"] == S.SUCCEEDED:
                self.advance(row["step_name"], S.SUCCEEDED, row["output"])

    def unevaluable(self, row: dict[str, Any], message: str) -> dict[str, Any]:
        """A new run whose expression could not be evaluated fails at once: its error."""
        row.update(status=S.FAILED, finished_at=self.now, error_type="expression", error_message=message)
        return {"step": row["step_name"], "type": "expression", "message": message, "code": None}

    def task_arguments(self, step: StepDefinition, row: dict[str, Any]) -> dict[str, Any] | None:
        """A task step's run is given its Celery task's arguments, evaluated now, as its input
        (``{"args": [...], "kwargs": {...}}``); the error when one cannot be evaluated."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for where, keyword, expression in step.arguments:
            try:
                value = self.evaluate(expression)
            except ExpressionError as exc:
                return self.unevaluable(row, f"{where}: {exc}")
            if keyword is None:
                args.append(value)
            else:
                kwargs[keyword] = value
        row["input"] = {"args": args, "kwargs": kwargs}
        return None

    def wait_until(self, row: dict[str, Any], due: datetime) -> None:
        """A new run waits until ``due`` (a timer, a wait step's deadline): its message goes out
        now, with an ETA, unless ``due`` is past the ETA horizon (the reconciler sends it then)."""
        row["not_before"] = due
        if due <= self.now + timedelta(seconds=self.settings.eta_horizon):
            row["published_at"] = self.now

    def redispatch(self, run: StepRunRecord) -> None:
        """Publish an existing run again (its message was lost or never sent)."""
        step = self.definition.steps_by_name[run.step_name]
        workflow, index = self.record.workflow_name, run.item_index
        dispatch = Dispatch.of(step, run.id, self.id, workflow, run.attempt, run.not_before, index, self.now)
        self.dispatches.append(dispatch)

    def skip(self, names: Sequence[str]) -> None:
        if not names:
            return
        attempts = self.runs.next_attempts(names, reset=bool(self.retries))
        rows = []
        for name in names:
            row = new_run(self.id, self.now, self.definition.steps_by_name[name], attempts[name])
            row.update(status=S.SKIPPED, finished_at=self.now)
            rows.append(row)
        for row in rows:
            self.new.append(row)
            self.count(row["step_type"], None, S.SKIPPED)
            self.event(row["step_name"], row["attempt"], None, S.SKIPPED, "no live incoming edge")

    def advance(self, step: str, status: StepStatus, output: Any = None) -> None:
        """``step`` resolved: evaluate its conditions, then open or skip what follows."""
        if self.status in TERMINAL_EXECUTION:
            return  # decided already (failed or cancelled in this same unit)
        if status == S.SUCCEEDED:
            self.known_outputs[step] = output
            self.changes["checkpoint"] = {"last_completed_step": step}
        verdicts: dict[tuple[str, str], bool] = {}
        conditional = self.graph.conditional[step]
        if conditional and status != S.SKIPPED:
            scope = self.condition_scope([e.condition for e in conditional if e.condition is not None])
            for edge in conditional:
                assert edge.condition is not None
                try:
                    verdicts[(edge.source, edge.target)] = edge.condition.truth(scope, self.budget)
                except ExpressionError as exc:
                    self.fail(
                        {"step": step, "type": "condition", "message": f"{edge.label()}: {exc}", "code": None}
                    )
                    return

        def edge_is_live(edge: Edge) -> bool:
            return verdicts[(edge.source, edge.target)]

        decision = planner.advance(self.graph, step, status, edge_is_live, self.arrive)
        if decision.skipped:
            self.skip(decision.skipped)
        self.open(decision.ready)

    def arrive(self, join: str, live: bool, degree: int) -> tuple[int, int]:
        """One predecessor of ``join`` resolved: (predecessors left, live edges so far)."""
        remaining, count = self.barriers.get(join, [degree, 0])
        remaining, count = remaining - 1, count + int(live)
        if remaining > 0:
            self.barriers[join] = [remaining, count]
        else:
            self.barriers.pop(join, None)  # the join is decided: nothing more to count
        self.changes["barriers"] = dict(self.barriers)
        return remaining, count

    def reset_barriers(self, counters: Mapping[str, tuple[int, int]], drop: Iterable[str]) -> None:
        """Forget the counters of ``drop``, then set ``counters`` (a retry resets steps)."""
        for name in drop:
            self.barriers.pop(name, None)
        self.barriers.update({name: [remaining, live] for name, (remaining, live) in counters.items()})
        self.changes["barriers"] = dict(self.barriers)

    def replan(self, states: Mapping[str, str], reason: str) -> bool:
        """Open or skip what a full plan over ``states`` (each step's current status) finds
        ready or dead; whether anything changed."""
        conditions = [
            e.condition for es in self.graph.outgoing.values() for e in es if e.condition is not None
        ]
        scope = self.condition_scope(conditions) if conditions else {}
        try:
            plan = planner.plan(
                self.graph,
                states,
                lambda edge: edge.condition is not None and edge.condition.truth(scope, self.budget),
            )
        except ExpressionError as exc:
            self.fail({"step": None, "type": "condition", "message": str(exc), "code": None})
            return True
        self.skip(list(plan.skipped))
        self.open(list(plan.ready), reason=reason)
        return bool(plan.ready or plan.skipped)

    def scope(self, expressions: Sequence[Expression]) -> dict[str, Any]:
        """``input``, ``metadata`` and the outputs the expressions read (None when not succeeded)."""
        refs: set[str] = set()
        dynamic = False
        for expression in expressions:
            refs |= expression.step_refs
            dynamic = dynamic or expression.dynamic_step_refs
        missing = refs - self.known_outputs.keys()
        loaded = dict(self.facts.all_outputs()) if dynamic else self.facts.output(missing)
        # a step this decision resets has no output, unless it succeeded again in it
        loaded = {name: value for name, value in loaded.items() if name not in self.runs.superseded}
        steps = (
            {name: None for name in refs}
            | loaded
            | {k: v for k, v in self.known_outputs.items() if dynamic or k in refs}
        )
        return {"input": self.record.input, "metadata": self.record.metadata, "steps": steps}

    def condition_scope(self, conditions: Sequence[Expression]) -> dict[str, Any]:
        """The scope of conditions: :meth:`scope` with its secrets opened, since a condition
        compares values (what it gives is a verdict, never the value)."""
        scope = self.scope(conditions)
        if self.opener is not None and has_sealed(scope):
            opened: dict[str, Any] = self.opener(scope, self.record)  # (for this execution only)
            return opened
        return scope

    def evaluate(self, expression: Expression) -> Any:
        return expression.evaluate(self.scope([expression]), self.budget)

    # failures

    def step_succeeded(
        self,
        step: StepDefinition,
        attempt: int,
        previous: str,
        output: Any,
        reason: str | None = None,
        actor: str | None = None,
    ) -> None:
        """A run of ``step`` moved from ``previous`` to succeeded: it counts, its history says
        so, what follows it opens or is skipped, and the execution settles."""
        self.count(step.type, previous, S.SUCCEEDED)
        self.event(step.name, attempt, previous, S.SUCCEEDED, reason, actor=actor)
        self.advance(step.name, S.SUCCEEDED, output)
        self.settle()

    def step_failed(self, step: str, error: dict[str, Any]) -> None:
        """A step failed for good: an optional one is passed over, a required one fails all."""
        if self.status in TERMINAL_EXECUTION:
            return
        if self.definition.steps_by_name[step].required:
            self.fail(error)
        else:
            self.counts["resolved"] += 1
            self.advance(step, S.FAILED)

    def fail(self, error: dict[str, Any]) -> None:
        if self.status in TERMINAL_EXECUTION:
            return
        self.changes["error"] = error
        reason = f"step {error.get('step')!r} failed: {error.get('message')}"
        self.transition(E.FAILED, reason, error)
        self.close_open_runs("execution failed")

    def close_open_runs(self, reason: str) -> None:
        """Cancel every open run: queued ones are revoked, running ones stopped."""
        values = {"status": S.CANCELLED, "finished_at": self.now, "carried": False}
        closed = self.runs.update_in(OPEN_STEP, values)
        for run in closed:
            self.moved(run, run.status, S.CANCELLED)
            if run.item_index is None:  # (a map's items end with it, unrecorded one by one)
                self.event(run.step_name, run.attempt, run.status, S.CANCELLED, reason)
            self.stop(run)
        if any(run.step_type == StepType.WORKFLOW for run in closed):
            self.cascades.append(("cancel", None))

    def stop(self, run: StepRunRecord) -> None:
        """Revoke the task of an open run that ends (stopping it if it runs)."""
        if run.status in (S.QUEUED, S.RETRYING, S.RUNNING) and run.step_type in WORKER_STEPS:
            terminate = run.status == S.RUNNING
            self.revocations.append(
                (run.task_id or task_id(self.id, run.step_name, run.attempt, run.item_index), terminate)
            )

    # settling

    def settle(self) -> None:
        """Derive the execution's status from its counters: complete, waiting, or running."""
        if self.status in TERMINAL_EXECUTION:
            return
        if self.counts["resolved"] >= len(self.graph.steps):
            if self.status in (E.RUNNING, E.PAUSED):
                self.complete()
            return
        if self.status == E.RUNNING and self.counts["active"] == 0:
            waiting = self.runs.in_states((S.WAITING, S.PENDING))
            if waiting:
                self.transition(E.WAITING, waiting_reason(waiting))
            else:
                log.warning("execution %s has nothing running and nothing waiting", self.id)
        elif self.status == E.WAITING and self.counts["active"] > 0:
            self.transition(E.RUNNING, "steps dispatched")

    def complete(self) -> None:
        sinks = [name for name in self.graph.steps if not self.graph.outgoing[name]]
        unknown = [name for name in sinks if name not in self.known_outputs]
        outputs = {name: self.known_outputs[name] for name in sinks if name in self.known_outputs}
        if unknown:
            loaded = self.facts.output(unknown)
            outputs |= {name: value for name, value in loaded.items() if name not in self.runs.superseded}
        self.changes["output"] = {name: outputs[name] for name in sinks if name in outputs}
        self.transition(E.COMPLETED)

    def in_place_event(self, row: Mapping[str, Any], worker: str) -> None:
        item = None if row.get("item_index") is None else {"index": row["item_index"]}
        self.event(row["step_name"], row["attempt"], S.QUEUED, S.RUNNING, RUN_IN_PLACE, item, actor=worker)

    def row_values(self) -> dict[str, Any] | None:
        """The execution's row as the decision leaves it (None: nothing to write)."""
        if not (self.dirty or self.changes or self.new):
            return None
        self.written = {
            "status": self.status,
            "active_steps": self.counts["active"],
            "waiting_steps": self.counts["waiting"],
            "resolved_steps": self.counts["resolved"],
            "retries": self.retries,
            "updated_at": self.now,
            **self.changes,
        }
        return self.written

    def writes_only_itself(self) -> bool:
        """Whether the decision writes no more than the execution's row, its new runs and its
        events (no run it found changes, nothing is taken or signalled), as a new execution's
        first decision does: it can then be written as the row is inserted."""
        runs = self.runs
        return not (runs.changes or runs.superseded or self.take or self.signals_sent or self.signals_taken)

    def written_run(self, step: str, index: int | None) -> StepRunRecord | None:
        """A run this decision created, as written (under its id): of ``step``, item ``index``."""
        for position, (run_id, row) in enumerate(zip(self.new_ids, self.new, strict=False)):
            if row["step_name"] == step and row["item_index"] == index:
                return replace(provisional(row, position), id=run_id)
        return None

    def saved_record(self) -> ExecutionRecord | None:
        """The execution's row as the decision wrote it (None if it wrote nothing)."""
        if self.written is None:
            return None
        return replace(self.record, **self.written, revision=self.record.revision + 1)

    def summary(self) -> Mapping[str, Any]:
        return {"status": self.status, **self.counts}


# the runs of the execution as a decision leaves them: the loaded ones with its changes
# applied, and the runs it creates, under provisional (negative) ids


def provisional(row: Mapping[str, Any], index: int) -> StepRunRecord:
    """A run the decision creates, as a record under the provisional id ``-(index + 1)``."""
    values: dict[str, Any] = {name: row.get(name) for name in _RECORD_FIELDS}
    values.update(id=-(index + 1), superseded=False)
    return StepRunRecord(**values)


@dataclass(frozen=True, slots=True)
class RunChange:
    """``values`` set on the runs ``ids``, each of which must still be in one of ``expect``; with
    ``step``, on that step's own run (a map's or a workflow step's, whose id is not known)."""

    ids: tuple[int, ...]
    values: Mapping[str, Any]
    expect: tuple[str, ...]
    step: str | None = None


class Runs:
    """The execution's runs as the decision leaves them (see the module's docstring)."""

    def __init__(self, facts: Facts, new: list[dict[str, Any]]) -> None:
        self._facts = facts
        self._loaded: dict[int, StepRunRecord] | None = None
        self._known_partly: dict[int, StepRunRecord] | None = None
        self.new = new  # the rows of the runs this decision creates, in order
        self.changes: list[RunChange] = []
        self.superseded: set[str] = set()  # steps whose runs this decision supersedes
        self.kept: set[str] = set()  # of them, map steps whose succeeded items are kept

    @property
    def _partial(self) -> dict[int, StepRunRecord]:
        """The runs known while not every run is (of map items), by id."""
        if self._known_partly is None:
            self._known_partly = self._facts.partial_runs()
        return self._known_partly

    def _existing(self) -> dict[int, StepRunRecord]:
        if self._loaded is None:
            if self._facts.runs is None:
                raise Missing(RUNS)
            self._loaded = {run.id: run for run in self._facts.runs}
        return self._loaded

    def live(self) -> list[StepRunRecord]:
        """Every run not superseded, oldest first (the runs this decision creates last)."""
        existing = sorted(self._existing().values(), key=lambda run: (run.queued_at, run.id))
        return existing + [provisional(row, index) for index, row in enumerate(self.new)]

    def current(self) -> dict[str, StepRunRecord]:
        """The latest attempt of each step that has one (a map step's own run, not its items')."""
        steps = [run for run in self.live() if run.item_index is None]
        return {run.step_name: run for run in sorted(steps, key=lambda run: run.attempt)}

    def find(self, run_id: int) -> StepRunRecord | None:
        return next((run for run in self.live() if run.id == run_id), None)

    def in_states(self, statuses: Collection[str]) -> list[StepRunRecord]:
        return [run for run in self.live() if run.status in statuses]

    def next_attempts(self, steps: Iterable[str], reset: bool) -> dict[str, int]:
        """The attempt number each step's next run gets: 1, unless a retry has ever ``reset``
        steps of the execution (their attempts count on from the runs it superseded)."""
        if not reset:
            return dict.fromkeys(steps, 1)
        if self._facts.attempts is None:
            raise Missing(ATTEMPTS)
        latest = dict(self._facts.attempts)
        for row in self.new:
            latest[row["step_name"]] = max(latest.get(row["step_name"], 0), row["attempt"])
        return {step: latest.get(step, 0) + 1 for step in steps}

    def failures(self, step: str, lost: str, index: int | None = None) -> tuple[int, int]:
        """Failed attempts of ``step`` (of its item ``index``) since it was last reset, and of
        them those ``lost``."""
        if index is None or self._facts.runs is not None:
            runs = [run for run in self.live() if run.step_name == step and run.item_index == index]
        else:
            runs = [self._partial.get(run.id, run) for run in self._facts.runs_of_item(step, index)]
        failed = [run for run in runs if run.status == StepStatus.FAILED]
        return len(failed), sum(run.error_type == lost for run in failed)

    def update(self, run_id: int, values: Mapping[str, Any], expect: Collection[str]) -> bool:
        """Set ``values`` on the run if it is in one of ``expect``: whether it was."""
        return bool(self.update_all([run_id], values, expect))

    def update_all(
        self, run_ids: Iterable[int], values: Mapping[str, Any], expect: Collection[str]
    ) -> list[StepRunRecord]:
        """Set ``values`` on those of the runs in one of ``expect``; those runs as they were."""
        if "status" in values:
            check_step_update(expect, values["status"])
        before: list[StepRunRecord] = []
        stored: list[int] = []
        for run_id in run_ids:
            if run_id < 0:
                row = self.new[-run_id - 1]
                if row["status"] in expect:
                    before.append(provisional(row, -run_id - 1))
                    row.update(values)
                continue
            partial = self._facts.runs is None and run_id in self._partial
            existing = self._partial if partial else self._existing()
            run = existing.get(run_id)
            if run is not None and run.status in expect:
                before.append(run)
                existing[run_id] = replace(run, **{k: v for k, v in values.items() if k in _RECORD_FIELDS})
                stored.append(run_id)
        if stored:
            self.changes.append(RunChange(tuple(stored), dict(values), tuple(expect)))
        return before

    def update_own(self, step: str, values: Mapping[str, Any], expect: Collection[str]) -> None:
        """Set ``values`` on the own run of ``step`` (a map's or workflow step's), which must
        be in one of ``expect``: by its id when it is known, otherwise by its step."""
        if "status" in values:
            check_step_update(expect, values["status"])
        for row in self.new:
            if row["step_name"] == step and row["item_index"] is None and row["status"] in expect:
                row.update(values)
                return
        if self._loaded is not None:
            own = [r for r in self._loaded.values() if r.step_name == step and r.item_index is None]
            if own:
                self.update_all([max(own, key=lambda run: run.attempt).id], values, expect)
                return
        self.changes.append(RunChange((), dict(values), tuple(expect), step))

    def update_in(self, statuses: Collection[str], values: Mapping[str, Any]) -> list[StepRunRecord]:
        """Set ``values`` on every run in one of ``statuses``; those runs as they were."""
        return self.update_all([run.id for run in self.in_states(statuses)], values, statuses)

    def supersede(self, steps: Collection[str], keep: Collection[str] = ()) -> None:
        """The runs of ``steps`` so far are history: a retry starts them again; of the map steps
        in ``keep``, the items that succeeded stay (they do not run again)."""
        existing = self._existing()
        for run_id in [run_id for run_id, run in existing.items() if run.step_name in steps]:
            run = existing[run_id]
            if run.step_name in keep and run.item_index is not None and run.status == StepStatus.SUCCEEDED:
                continue
            del existing[run_id]
        self.superseded |= set(steps)
        self.kept |= set(keep) & set(steps)

    def kept_items(self, step: str) -> set[int]:
        """The indices of the succeeded items of ``step`` a retry kept (none if it kept none)."""
        if step not in self.kept:
            return set()
        return {
            run.item_index
            for run in self._existing().values()
            if run.step_name == step and run.item_index is not None and run.status == StepStatus.SUCCEEDED
        }
