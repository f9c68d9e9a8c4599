"""Workflow steps, decided on a unit: the end of a child execution, told to the step (or the
map item) that waits for it, and a child that could not start. A workflow step is opened and
asks for its child like a map step opens its items (:mod:`workflow_engine.decisions.maps`);
the coordinator starts the child once the decision has committed."""

from __future__ import annotations

from typing import Any

from workflow_engine.core.retry import FailureKind
from workflow_engine.core.states import ExecutionStatus, StepStatus
from workflow_engine.decisions.maps import end_own, item_failed, item_succeeded, latest_item_run, step_error
from workflow_engine.decisions.outcomes import Failure
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions.model import StepType
from workflow_engine.store.records import StepRunRecord

E = ExecutionStatus
S = StepStatus


def opened_after(run: StepRunRecord, child: Any) -> bool:
    """Whether the workflow step's run ``run`` was opened after its child ``child`` ended (a
    retry of the parent opened it): the child is then retried, reused or replaced, not heard."""
    return child.finished_at is not None and run.queued_at > child.finished_at


def child_ended(
    unit: Unit, step_name: str, index: int | None, child: Any, run: StepRunRecord | None = None
) -> bool:
    """The child execution ``child`` (its record) of ``step_name`` (its item ``index``) ended:
    the step (or item) succeeds with its output, or fails with it (``run``: the run that waits
    for it, when known). Whether anything changed."""
    step = unit.definition.step(step_name)
    if run is None:
        run = unit.runs.current().get(step_name) if index is None else latest_item_run(unit, step_name, index)
    if run is None or run.status != S.RUNNING or run.step_type != StepType.WORKFLOW:
        return False
    completed = child.status == E.COMPLETED
    if opened_after(run, child) and (not completed or child.input != run.input):
        return False  # a retry's run: the child is retried or started anew (Children.sync)
    where = f"child execution {child.id} ({child.workflow_name} {child.workflow_version})"
    if completed:
        values: dict[str, Any] = {"status": S.SUCCEEDED, "output": child.output, "finished_at": unit.now}
        error = None
    else:
        why = (child.error or {}).get("message") or child.status
        error = step_error(step_name, f"child_{child.status}", f"{where} {child.status}: {why}")
        values = {"status": S.FAILED, "error_type": error["type"], "error_message": error["message"]}
        values["finished_at"] = unit.now
    if run.started_at is not None:
        values["duration_ms"] = int((unit.now - run.started_at).total_seconds() * 1000)
    if index is None:
        linked = {"child": child.id, **(error or {})}
        end_own(
            unit,
            step,
            run.attempt,
            child.output,
            error,
            f"{where} {child.status}",
            details=linked,
            duration_ms=values.get("duration_ms"),
        )
        unit.settle()
        return True
    if not unit.runs.update(run.id, values, (S.RUNNING,)):
        return False
    details = {"index": index, "child": child.id, **(error or {})}
    unit.event(step_name, run.attempt, S.RUNNING, values["status"], f"{where} {child.status}", details)
    if completed:
        item_succeeded(unit, step_name, index, child.output)
    else:
        failure = Failure(
            FailureKind.FATAL, error["type"] if error else "", values.get("error_message", ""), 0
        )
        item_failed(unit, run, step_name, index, run.attempt, failure)
    unit.settle()
    return True


def child_refused(
    unit: Unit,
    step_name: str,
    index: int | None,
    message: str,
    kind: str = "child_refused",
    code: str | None = None,
) -> bool:
    """The child of ``step_name`` (its item ``index``) could not start (its input does not fit its
    workflow, its tree has started every child it may): the step or item fails with ``message``
    (an error of type ``kind``, its ``code`` if any)."""
    step = unit.definition.step(step_name)
    error = {**step_error(step_name, kind, message), "code": code}
    if index is None:
        run = unit.runs.current().get(step_name)
        if run is None or run.status != S.RUNNING:
            return False
        end_own(unit, step, run.attempt, None, error)
        unit.settle()
        return True
    run = latest_item_run(unit, step_name, index)
    if run is None:
        return False
    values = {
        "status": S.FAILED,
        "error_type": error["type"],
        "error_message": message,
        "error_code": code,
        "finished_at": unit.now,
    }
    if run.status != S.RUNNING or not unit.runs.update(run.id, values, (S.RUNNING,)):
        return False
    unit.event(step_name, run.attempt, S.RUNNING, S.FAILED, message, {"index": index, **error})
    item_failed(unit, run, step_name, index, run.attempt, Failure(FailureKind.FATAL, kind, message, 0, code))
    unit.settle()
    return True
