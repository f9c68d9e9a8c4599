"""Operator verbs on one execution: pause, resume, cancel, retry, next step, complete a step."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from workflow_engine.core import planner
from workflow_engine.core.graph import Edge
from workflow_engine.core.states import (
    OPEN_STEP,
    RETRYABLE_EXECUTION,
    TERMINAL_EXECUTION,
    ExecutionStatus,
    StepStatus,
)
from workflow_engine.decisions import maps, waiting
from workflow_engine.decisions.dispatch import task_id
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions import compatibility
from workflow_engine.definitions.model import WORKER_STEPS, StepType, WorkflowDefinition
from workflow_engine.definitions.schemas import check_data
from workflow_engine.errors import InvalidOperation, PermissionDenied, StepNotFound

E = ExecutionStatus
S = StepStatus


def pause(unit: Unit, reason: str | None = None) -> None:
    """No new step starts; queued ones are held back (running ones finish and are recorded)."""
    unit.transition(E.PAUSED, reason or "paused")
    held = unit.runs.update_in((S.QUEUED, S.RETRYING), {"status": S.PENDING, "carried": False})
    for run in held:
        # not revoked: the same attempt is published again on resume; a stale copy of its message
        # finds the run no longer claimable and is dropped by the worker
        unit.moved(run, run.status, S.PENDING)
        if run.item_index is None:
            unit.event(run.step_name, run.attempt, run.status, S.PENDING, "held: execution paused")
    if _has_children(unit):
        unit.cascades.append(("pause", None))


def _has_children(unit: Unit) -> bool:
    return any(step.workflow is not None for step in unit.definition.steps)


def resume(unit: Unit, reason: str | None = None) -> None:
    unit.transition(E.RESUMED, reason or "resumed")
    unit.transition(E.RUNNING)
    if not unit.step_mode:
        for run in unit.runs.in_states((S.PENDING,)):
            if run.item_index is None:
                release(unit, run, "released: execution resumed")
    for name in list(unit.maps):  # (a map that has resolved has nothing pending)
        maps.admit(unit, name)
    if _has_children(unit):
        unit.cascades.append(("resume", None))
    unit.settle()


def release(unit: Unit, run: Any, reason: str) -> None:
    """Queue a held run: at once, or, for a retry held during its backoff, at the backoff's end
    (published now with its ETA, or left to the reconciler past the ETA horizon). A map or
    workflow step starts."""
    if run.step_type in (StepType.MAP, StepType.WORKFLOW):
        maps.release_held(unit, run)
        return
    waiting = run.not_before is not None and run.not_before > unit.now
    to = S.RETRYING if waiting else S.QUEUED
    publish = not waiting or run.not_before <= unit.now + timedelta(seconds=unit.settings.eta_horizon)
    values = {"status": to, "published_at": unit.now if publish else None}
    if not unit.runs.update(run.id, values, (S.PENDING,)):
        return
    unit.count(run.step_type, S.PENDING, to)
    unit.event(run.step_name, run.attempt, S.PENDING, to, reason)
    if publish:
        unit.redispatch(run)


MIGRATABLE = frozenset({E.RUNNING, E.PAUSED, E.WAITING, E.FAILED})


def migrate(unit: Unit, definition: WorkflowDefinition, workflow_id: int) -> str:
    """Move the execution to another version of its workflow (``definition``, stored as
    ``workflow_id``): every step it has run or is running must be there with the same type.
    What is ready under the new version's edges opens; the version it left."""
    if unit.status not in MIGRATABLE:
        raise InvalidOperation(
            f"only a running, paused, waiting or failed execution can be migrated; this one is {unit.status}"
        )
    previous = unit.record.workflow_version
    if definition.version == previous:
        raise InvalidOperation(f"the execution already runs version {previous}")
    current = unit.runs.current()
    ran = [name for name, run in current.items() if run.status != S.SKIPPED]
    problems = compatibility.migration_problems(unit.definition, definition, ran)
    if problems:
        raise InvalidOperation(f"cannot migrate to version {definition.version}: {'; '.join(problems)}")
    unit.definition, unit.graph = definition, definition.graph
    unit.changes.update(
        workflow_id=workflow_id, workflow_version=definition.version, total_steps=len(definition.steps)
    )
    kept = {name: run.status for name, run in current.items()}
    unit.reset_barriers(
        _barriers(unit, set(definition.steps_by_name) - set(kept), kept), drop=list(unit.barriers)
    )
    details = {"from_version": previous, "to_version": definition.version}
    unit.event(
        None,
        None,
        unit.status,
        unit.status,
        f"migrated from version {previous} to {definition.version}",
        details,
    )
    if unit.status != E.FAILED:  # (a failed one moves on when retried; a paused one holds what opens)
        unit.recount()
        unit.replan(kept, reason=f"migrated to version {definition.version}")
        unit.settle()
    return previous


def cancel(unit: Unit, reason: str | None = None) -> None:
    """Nothing more runs: open runs end cancelled, queued tasks are revoked, running ones stopped."""
    unit.transition(E.CANCELLED, reason or "cancelled")
    unit.close_open_runs(f"cancelled: {reason}" if reason else "cancelled")


def retry(unit: Unit, from_step: str | None = None) -> list[str]:
    """Run a step and everything downstream of it again; upstream outputs are kept."""
    if unit.status not in RETRYABLE_EXECUTION:
        raise InvalidOperation(
            f"only a failed or waiting execution can be retried; this one is {unit.status}"
        )
    current = unit.runs.current()
    targets = [from_step] if from_step is not None else _retry_targets(unit, current)
    for target in targets:
        if target not in unit.graph.incoming:
            raise StepNotFound(target)
        _check_upstream(unit, target, current)
    # what runs again: the targets and what follows them, the steps cancelled when the execution
    # failed (parallel branches), and a required step that failed on another branch than the
    # target's (left failed, it would let the execution complete without it), with what follows
    reset: set[str] = set()
    for name in [*targets, *(n for n, run in current.items() if _rerun_with_retry(unit, run))]:
        reset |= unit.graph.descendants(name)
    for run in current.values():
        if run.step_name in reset and run.status in OPEN_STEP:
            to = S.FAILED if run.status == S.WAITING and run.error_type else S.CANCELLED
            unit.runs.update(run.id, {"status": to, "finished_at": unit.now}, (run.status,))
            unit.event(run.step_name, run.attempt, run.status, to, "reset by retry")
            if run.status == S.RUNNING:
                unit.revocations.append((run.task_id or task_id(unit.id, run.step_name, run.attempt), True))
    # a map retried as a target keeps the items that succeeded (its list is the same: what it
    # reads is upstream, and kept); one reset by an upstream retry runs whole again
    keep = [name for name in targets if unit.definition.step(name).type is StepType.MAP]
    unit.runs.supersede(reset, keep)
    for name in reset:
        unit.maps.pop(name, None)
    unit.changes["maps"] = unit.maps
    kept = {name: run.status for name, run in current.items() if name not in reset}
    unit.reset_barriers(_barriers(unit, reset - set(targets), kept), drop=reset)
    unit.retries += 1
    unit.transition(E.RUNNING, f"retry from {', '.join(targets)}")
    unit.recount()
    unit.open(targets, reason="retry")
    unit.replan({**kept, **dict.fromkeys(targets, S.QUEUED)}, reason="retry")
    unit.settle()
    return targets


def _rerun_with_retry(unit: Unit, run: Any) -> bool:
    if run.status == S.CANCELLED:
        return True
    return run.status == S.FAILED and unit.definition.step(run.step_name).required


def _retry_targets(unit: Unit, current: dict[str, Any]) -> list[str]:
    error = unit.record.error or {}
    if unit.status == E.FAILED and error.get("step") in unit.graph.incoming:
        return [error["step"]]
    fixes = [
        run.step_name
        for run in current.values()
        if run.status == S.WAITING and run.step_type in WORKER_STEPS
    ]
    if not fixes:
        raise InvalidOperation("nothing to retry: name a step with from_step")
    return fixes


def _check_upstream(unit: Unit, target: str, current: dict[str, Any]) -> None:
    for name in unit.graph.ancestors(target) - {target}:
        run = current.get(name)
        status = run.status if run else "not started"
        failed_optional = status == S.FAILED and not unit.definition.step(name).required
        if status not in (S.SUCCEEDED, S.SKIPPED) and not failed_optional:
            raise InvalidOperation(
                f"cannot retry from {target!r}: upstream step {name!r} is {status}; retry from {name!r}"
            )


def _barriers(unit: Unit, joins: set[str], kept: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Join counters rebuilt from the steps that keep their outcome."""
    counters: dict[str, tuple[int, int]] = {}
    wide = [name for name in joins if unit.graph.in_degree(name) > 1]
    if not wide:
        return counters
    conditions = [
        edge.condition for name in wide for edge in unit.graph.incoming[name] if edge.condition is not None
    ]
    scope = unit.condition_scope(conditions)

    def edge_is_live(edge: Edge) -> bool:
        assert edge.condition is not None
        return edge.condition.truth(scope, unit.budget)

    for name in wide:
        remaining, live = planner.barrier(unit.graph, name, kept, edge_is_live)
        if remaining < unit.graph.in_degree(name):
            counters[name] = (remaining, live)
    return counters


def next_step(unit: Unit) -> str:
    """Step mode: dispatch the oldest ready step; its name."""
    if not unit.step_mode:
        raise InvalidOperation("execution is not in step mode")
    if unit.status == E.PAUSED or unit.status in TERMINAL_EXECUTION:
        raise InvalidOperation(f"execution is {unit.status}")
    pending = [run for run in unit.runs.in_states((S.PENDING,)) if run.item_index is None]
    if not pending:
        raise InvalidOperation("no step is ready: steps are still running, or waiting for a person")
    run = pending[0]
    release(unit, run, "next step")
    if unit.status == E.WAITING:
        unit.transition(E.RUNNING, f"next step: {run.step_name}")
    unit.settle()  # (a map or workflow step may resolve at once)
    return run.step_name


def complete_step(
    unit: Unit,
    step: str,
    data: Any,
    user: str | None = None,
    role: str | None = None,
    seal: Callable[[Any], Any] | None = None,
) -> None:
    """Complete a human task, or a step waiting for a fix, with ``data`` as its output (its
    secrets sealed by ``seal`` once it is found good)."""
    if step not in unit.graph.incoming:
        raise StepNotFound(step)
    if unit.status in TERMINAL_EXECUTION:
        raise InvalidOperation(f"execution is {unit.status}")
    definition = unit.definition.step(step)
    runs = [run for run in unit.runs.in_states((S.WAITING,)) if run.step_name == step]
    if definition.type is StepType.WAIT:
        raise InvalidOperation(f"step {step!r} waits for the signal {definition.waits_for!r}: send it")
    if not runs or definition.type is StepType.TIMER:
        raise InvalidOperation(f"step {step!r} is not waiting to be completed")
    check_data(definition.input_schema, data, f"data for step {step!r}")
    if definition.assignees and user is not None:
        allowed = set(definition.assignees)
        if user not in allowed and f"role:{role}" not in allowed:
            raise PermissionDenied(
                f"step {step!r} may be completed by {', '.join(definition.assignees)} only"
            )
    data = seal(data) if seal is not None else data
    waiting.succeed(unit, runs[0], data, user, f"completed by {user or 'an operator'}", "completed")
