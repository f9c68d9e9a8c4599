"""Map steps, decided on a unit: opening them (and opening workflow steps), their items'
outcomes, and the end of a map's or a workflow step's own run (a child's end is
:mod:`workflow_engine.decisions.workflow_steps`').

A map or workflow step is opened by :meth:`Unit.open <workflow_engine.decisions.unit.Unit.open>`
as its own run, running; :func:`start_opened` (called by every decision, see
:func:`~workflow_engine.decisions.steps.decide`) then starts it: a map evaluates its items and
creates one run per item (admitting at most ``max_concurrency`` at once, the rest pending until
a slot frees), a workflow step asks for its child execution, which the coordinator starts once
the decision has committed. Each item's outcome moves the map's counts by one
(:mod:`workflow_engine.core.mapping`); the last one assembles the results, read once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workflow_engine.core import mapping
from workflow_engine.core.expressions import ITEM_NAMES, ROOT_NAMES, Budget, compile_expression
from workflow_engine.core.retry import FailureKind
from workflow_engine.core.states import OPEN_STEP, ExecutionStatus, StepStatus
from workflow_engine.decisions import attempts, delivery
from workflow_engine.decisions.outcomes import Failure
from workflow_engine.decisions.unit import Unit, new_run
from workflow_engine.definitions.model import StepDefinition, StepType
from workflow_engine.errors import ExpressionError
from workflow_engine.store.records import StepRunRecord, input_of, run_in_place_values

E = ExecutionStatus
S = StepStatus
WORKER_LOST = "worker_lost"


def step_error(step: str, kind: str, message: str) -> dict[str, Any]:
    return {"step": step, "type": kind, "message": message, "code": None}


def start_opened(unit: Unit) -> None:
    """Start the map and workflow steps the decision opened (starting one may resolve it at
    once and open more), then settle the execution again."""
    if not unit.opening:
        return
    while unit.opening:
        row = unit.opening.pop(0)
        if row["status"] == S.RUNNING:
            start(unit, unit.definition.step(row["step_name"]), row["attempt"])
    unit.settle()


def start(unit: Unit, step: StepDefinition, attempt: int) -> None:
    """The own run of ``step`` runs: its items open, or its child is asked for."""
    if unit.record.depth >= unit.settings.max_workflow_depth and step.workflow is not None:
        limit = unit.settings.max_workflow_depth
        message = (
            f"starting workflow {step.workflow!r} would nest deeper than {limit} (WFE_MAX_WORKFLOW_DEPTH)"
        )
        if step.type is StepType.MAP:  # (its history starts here: see Unit.open)
            unit.event(step.name, attempt, None, S.RUNNING, f"map over {step.items}")
        end_own(unit, step, attempt, None, step_error(step.name, "depth", message))
        return
    if step.type is StepType.WORKFLOW:
        try:
            child_input = _inputs(unit, step, None)
        except ExpressionError as exc:
            end_own(unit, step, attempt, None, step_error(step.name, "expression", f"input: {exc}"))
            return
        unit.runs.update_own(step.name, {"input": child_input}, (S.RUNNING,))
        unit.children.append((step.name, None))
        return
    _open_items(unit, step, attempt)


def _inputs(unit: Unit, step: StepDefinition, items: list[Any] | None) -> Any:
    """The input of a workflow step's child (``items`` None), or of each item: the step's
    ``input:`` mapping evaluated (for an item, with ``item`` and ``index``); without one, the
    execution's input (for an item, None: the claim gives the execution's)."""
    if not step.input:
        return unit.record.input if items is None else [None] * len(items)
    names = ROOT_NAMES | ITEM_NAMES if items is not None else ROOT_NAMES
    compiled = {key: compile_expression(source, names) for key, source in step.input.items()}
    scope = unit.scope(list(compiled.values()))
    if items is None:
        return {key: expression.evaluate(scope, unit.budget) for key, expression in compiled.items()}
    values = []
    for index, item in enumerate(items):
        here = {**scope, "item": item, "index": index}
        budget = Budget()  # each item's own: a long list does not exhaust a shared one
        try:
            values.append({key: expression.evaluate(here, budget) for key, expression in compiled.items()})
        except ExpressionError as exc:
            raise ExpressionError(f"for item {index}: {exc.message}", exc.expression) from None
    return values


def _open_items(unit: Unit, step: StepDefinition, attempt: int) -> None:
    assert step.items is not None

    def broken(kind: str, message: str) -> None:
        unit.event(step.name, attempt, None, S.RUNNING, f"map over {step.items}")
        end_own(unit, step, attempt, None, step_error(step.name, kind, message))

    try:
        items = unit.evaluate(compile_expression(step.items))
    except ExpressionError as exc:
        broken("expression", f"items: {exc}")
        return
    problem = mapping.items_problem(items, unit.settings.map_max_items)
    if problem is not None:
        broken("invalid_items", problem)
        return
    try:
        inputs = _inputs(unit, step, items)
    except ExpressionError as exc:
        broken("expression", f"input: {exc}")
        return
    progress = mapping.start(len(items), attempt, int(unit.now.timestamp() * 1000))
    done = unit.runs.kept_items(step.name) & set(range(len(items)))  # (a retry kept these)
    progress["succeeded"] = len(done)
    unit.maps[step.name] = progress
    unit.changes["maps"] = unit.maps
    window = step.max_concurrency or unit.settings.map_window
    cap = f", {step.max_concurrency} at a time" if step.max_concurrency else ""
    unit.event(
        step.name, attempt, None, S.RUNNING, f"map of {len(items)} item(s){cap}", {"items": len(items)}
    )
    if mapping.resolved(progress):  # an empty list, or every item kept by a retry
        _conclude(unit, step, progress)
        return
    workflow_items = step.workflow is not None
    admitted = 0
    for index, (item, item_input) in enumerate(zip(items, inputs, strict=True)):
        if index in done:
            continue
        row = new_run(unit.id, unit.now, step, attempt)
        row.update(
            step_type=StepType.WORKFLOW.value if workflow_items else StepType.AGENT.value,
            item_index=index,
            item=item,
            input=item_input,
        )
        if admitted >= window:
            row["status"] = S.PENDING
        elif workflow_items:
            row.update(status=S.RUNNING, started_at=unit.now, input=_child_input(unit, item_input))
            unit.children.append((step.name, index))
        else:
            row.update(status=S.QUEUED, published_at=unit.now)
        unit.new.append(row)
        admitted += int(row["status"] != S.PENDING)
        mapping.moved(progress, None, row["status"])


def _child_input(unit: Unit, item_input: Any) -> Any:
    return unit.record.input if item_input is None else item_input


def release_held(unit: Unit, run: StepRunRecord) -> None:
    """The own run of a map or workflow step was held (paused, step mode): it starts now."""
    if not unit.runs.update(run.id, {"status": S.RUNNING, "started_at": unit.now}, (S.PENDING,)):
        return
    unit.count(run.step_type, S.PENDING, S.RUNNING)
    unit.event(run.step_name, run.attempt, S.PENDING, S.RUNNING, "released")
    start(unit, unit.definition.step(run.step_name), run.attempt)


def admit(unit: Unit, name: str) -> None:
    """Queue the map's next pending items, as many as its window has room for."""
    progress = unit.maps.get(name)
    if progress is None or unit.status != E.RUNNING:
        return
    step = unit.definition.step(name)
    room = mapping.admissible(progress, step.max_concurrency or unit.settings.map_window)
    if room <= 0:
        return
    for run in unit.facts.pending_items(name, room):
        release_item(unit, step, run)


def release_item(unit: Unit, step: StepDefinition, run: StepRunRecord) -> None:
    """Queue a pending item (a retry held by a pause at the end of its backoff), or hand it to
    the reporting worker to run in place when it may; start a workflow item's child."""
    due = run.not_before is None or run.not_before <= unit.now
    if due and run.step_type == StepType.AGENT and _run_in_place(unit, step, run):
        return
    if run.step_type == StepType.WORKFLOW:
        values: dict[str, Any] = {"status": S.RUNNING, "started_at": unit.now}
        values["input"] = _child_input(unit, run.input)
        to = S.RUNNING
    else:
        waiting = run.not_before is not None and run.not_before > unit.now
        to = S.RETRYING if waiting else S.QUEUED
        horizon = unit.now + timedelta(seconds=unit.settings.eta_horizon)
        publish = run.not_before is None or run.not_before <= horizon  # (beyond: the reconciler)
        values = {"status": to, "published_at": unit.now if publish else None}
    if not unit.runs.update(run.id, values, (S.PENDING,)):
        return
    unit.moved(run, S.PENDING, to)
    if run.step_type == StepType.WORKFLOW:
        unit.children.append((step.name, run.item_index))
    elif values["published_at"] is not None:
        unit.redispatch(run)


def _run_in_place(unit: Unit, step: StepDefinition, run: StepRunRecord) -> bool:
    """The reporting worker runs ``run`` next, in place, if it may and runs nothing else so."""
    if unit.in_place is None or unit.continued is not None:
        return False
    if not delivery.may_run_in_place(step, S.QUEUED, item=True):
        return False
    worker, carrier = unit.in_place
    values = run_in_place_values(worker, carrier, unit.now)
    if not unit.runs.update(run.id, values, (S.PENDING,)):
        return False
    unit.moved(run, S.PENDING, S.RUNNING)
    row = {
        "step_name": run.step_name,
        "attempt": run.attempt,
        "queued_at": run.queued_at,
        "item_index": run.item_index,
        "item": run.item,
        **values,
        "input": input_of(run.input, unit.record.input),  # what its agent gets (not written)
    }
    unit.continued = (run.id, row)
    unit.in_place_event(row, worker)
    return True


# an item's outcome


def item_succeeded(unit: Unit, name: str, index: int, output: Any) -> None:
    """An item's run succeeded (and is recorded so): count it, admit the next, maybe conclude."""
    progress = unit.maps.get(name)
    if progress is None:
        return
    unit.item_outputs[(name, index)] = output
    mapping.moved(progress, S.RUNNING, S.SUCCEEDED)
    progress["succeeded"] += 1
    unit.changes["maps"] = unit.maps
    _next(unit, unit.definition.step(name), progress)


def item_failed(
    unit: Unit, run: StepRunRecord | None, name: str, index: int, attempt: int, failure: Failure
) -> str:
    """An item's attempt failed (its run is recorded failed): retry it within its step's policy,
    or count it failed for good. ``run`` is the failed run when known (it gives the item again
    for a retry). What became of the item: retrying or failed."""
    step = unit.definition.step(name)
    progress = unit.maps.get(name)
    if progress is None:
        return str(S.FAILED)
    failures, lost = unit.runs.failures(name, WORKER_LOST, index)
    retry = failure.kind is FailureKind.TRANSIENT and step.workflow is None
    if retry and step.retry.allows_another(failures - lost):
        source = run or latest_item_run(unit, name, index)
        assert source is not None  # (the failed run is one of them)
        reason = f"item {index} attempt {attempt} failed ({failure.error_type})"
        attempts.schedule_retry(unit, step, attempt, reason, source)
        return str(S.RETRYING)
    mapping.moved(progress, S.RUNNING, S.FAILED)
    progress["failed"] += 1
    unit.changes["maps"] = unit.maps
    if mapping.over_tolerance(progress, step.tolerated_failures):
        allowed = mapping.tolerated(step.tolerated_failures, progress["total"])
        message = (
            f"{progress['failed']} of {progress['total']} items failed (tolerated: {allowed}); "
            f"item {index}: {failure.message}"
        )
        _fail_map(unit, step, progress, step_error(name, "map_failed", message))
    else:
        _next(unit, step, progress)
    return str(S.FAILED)


def latest_item_run(unit: Unit, name: str, index: int) -> StepRunRecord | None:
    runs = unit.facts.runs_of_item(name, index)
    return max(runs, key=lambda run: run.attempt) if runs else None


def _next(unit: Unit, step: StepDefinition, progress: dict[str, int]) -> None:
    if mapping.resolved(progress):
        _conclude(unit, step, progress)
    else:
        admit(unit, step.name)


def _conclude(unit: Unit, step: StepDefinition, progress: dict[str, int]) -> None:
    """Every item resolved within the tolerance: the step succeeds with the results in order."""
    outputs = dict(unit.facts.item_outputs(step.name)) if progress["total"] else {}
    outputs.update({index: value for (name, index), value in unit.item_outputs.items() if name == step.name})
    output = mapping.results(progress["total"], outputs)
    reason = f"{progress['succeeded']} of {progress['total']} item(s) succeeded"
    end_own(unit, step, progress["attempt"], output, None, reason, progress)


def _fail_map(unit: Unit, step: StepDefinition, progress: dict[str, int], error: dict[str, Any]) -> None:
    """Too many items failed: the others stop, and the step fails."""
    open_items = [
        run
        for run in unit.runs.in_states(OPEN_STEP)
        if run.step_name == step.name and run.item_index is not None
    ]
    values = {"status": S.CANCELLED, "finished_at": unit.now, "carried": False}
    for run in unit.runs.update_all([run.id for run in open_items], values, OPEN_STEP):
        unit.moved(run, run.status, S.CANCELLED)
        unit.stop(run)
    if step.workflow is not None and open_items:
        unit.cascades.append(("cancel", step.name))
    end_own(unit, step, progress["attempt"], None, error, progress=progress)


def end_own(
    unit: Unit,
    step: StepDefinition,
    attempt: int,
    output: Any,
    error: dict[str, Any] | None,
    reason: str | None = None,
    progress: dict[str, int] | None = None,
    details: dict[str, Any] | None = None,
    duration_ms: int | None = None,
) -> None:
    """The own run of a map or workflow step ends: succeeded with ``output``, or failed with
    ``error``; the workflow moves on."""
    values: dict[str, Any] = {"finished_at": unit.now}
    if progress is not None:
        values["duration_ms"] = int(unit.now.timestamp() * 1000) - progress["opened_ms"]
    elif duration_ms is not None:
        values["duration_ms"] = duration_ms
    if error is None:
        values.update(status=S.SUCCEEDED, output=output)
    else:
        values.update(status=S.FAILED, error_type=error["type"], error_message=error["message"])
    unit.runs.update_own(step.name, values, (S.RUNNING,))
    to = values["status"]
    unit.count(step.type, S.RUNNING, to)
    why = reason or (None if error is None else error["message"])
    unit.event(step.name, attempt, S.RUNNING, to, why, details or error)
    if error is None:
        unit.advance(step.name, S.SUCCEEDED, output)
    else:
        unit.step_failed(step.name, error)
