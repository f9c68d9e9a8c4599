"""What happens to an execution when one of its steps reports, fires, is lost or times out, and
how any decision is made: :func:`decide` runs a decision (a function of a
:class:`~workflow_engine.decisions.unit.Unit`) from the facts at hand; each time it raises
:class:`~workflow_engine.decisions.facts.Missing`, the caller's ``load`` reads the facts it
names and the decision starts again on a fresh unit. Pure: the loading and the writing are the
caller's (:mod:`workflow_engine.coordinator.recording`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from workflow_engine.core import planner
from workflow_engine.core.retry import FailureKind
from workflow_engine.core.states import ExecutionStatus, StepStatus
from workflow_engine.decisions import attempts, delivery, maps
from workflow_engine.decisions.dispatch import task_id
from workflow_engine.decisions.facts import OUTPUTS, Facts, Missing
from workflow_engine.decisions.outcomes import Claim, Failure, Outcome, Success
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions.model import StepDefinition, StepType
from workflow_engine.store.records import StepRunRecord

E = ExecutionStatus
S = StepStatus
WORKER_LOST = maps.WORKER_LOST
TIMEOUT = "timeout"
TIMER_TOLERANCE = timedelta(seconds=1)
DISCARDED = "discarded"
T = TypeVar("T")


def begin(unit: Unit, queued: bool = False) -> None:
    """A new execution: it runs, and its first steps open. One that was ``queued`` for a
    concurrency slot says so (its history began when it was queued)."""
    record = unit.record
    if queued:
        unit.transition(E.RUNNING, "started: a concurrency slot freed")
        unit.open(planner.start(unit.graph).ready)
        unit.settle()
        return
    reason = f"{record.workflow_name} {record.workflow_version}, mode {record.mode}"
    parent = None
    if record.parent_execution_id is not None:  # a child: its history says whose
        reason += f", child of {record.parent_execution_id} step {record.parent_step}"
        parent = {
            "parent_execution_id": record.parent_execution_id,
            "parent_step": record.parent_step,
            "parent_index": record.parent_index,
        }
    unit.event(None, None, None, E.INITIALIZED, reason, parent)
    unit.transition(E.RUNNING, "started")
    unit.open(planner.start(unit.graph).ready)
    unit.settle()


def attempt_values(outcome: Outcome, now: datetime, item: bool = False) -> tuple[str, dict[str, Any]]:
    """The status an attempt ends in, and what is recorded on its run. A map ``item`` that
    fails validation fails (there is no fixing one item of a map by hand)."""
    values: dict[str, Any] = {
        "finished_at": now,
        "duration_ms": outcome.duration_ms,
        "output": None,
        "error_type": None,
        "error_message": None,
        "error_code": None,
    }
    if isinstance(outcome, Success):
        status = S.SUCCEEDED
        values["output"] = outcome.output
    else:
        status = S.WAITING if outcome.kind is FailureKind.VALIDATION and not item else S.FAILED
        values.update(error_type=outcome.error_type, error_message=outcome.message, error_code=outcome.code)
    values["status"] = status
    return status, values


def after_attempt(unit: Unit, claim: Claim, outcome: Outcome, status: str) -> str:
    """The attempt's run is recorded: move the execution on. Returns what became of the
    attempt: succeeded, retrying, waiting or failed."""
    step = claim.step
    details = None if isinstance(outcome, Success) else outcome.as_error(step.name)
    reason = None if isinstance(outcome, Success) else f"{outcome.error_type}: {outcome.message}"
    if claim.index is not None:
        details = {"index": claim.index, **(details or {})}
        unit.event(step.name, claim.attempt, S.RUNNING, status, reason, details, actor=claim.worker)
        if isinstance(outcome, Success):
            maps.item_succeeded(unit, step.name, claim.index, outcome.output)
            result = str(S.SUCCEEDED)
        else:
            result = maps.item_failed(unit, None, step.name, claim.index, claim.attempt, outcome)
        unit.settle()
        return result
    if isinstance(outcome, Success):
        unit.step_succeeded(step, claim.attempt, S.RUNNING, outcome.output, actor=claim.worker)
        return str(S.SUCCEEDED)
    unit.count(step.type, S.RUNNING, status)
    unit.event(step.name, claim.attempt, S.RUNNING, status, reason, details, actor=claim.worker)
    given = claim.input if step.type is StepType.TASK else None  # (a task's arguments)
    result = _after_failure(unit, step, claim.attempt, outcome, given)
    unit.settle()
    return result


def _after_failure(
    unit: Unit, step: StepDefinition, attempt: int, failure: Failure, given: Any = None
) -> str:
    """What follows a failed attempt; ``given``: the run's own input, which a next attempt
    keeps (a task step's arguments)."""
    if failure.kind is FailureKind.VALIDATION:
        return str(S.WAITING)  # the run waits for a fix: a retry, or completion with corrected data
    if failure.kind is FailureKind.TRANSIENT and _may_retry(unit, step, attempt, failure):
        note = f"attempt {attempt} failed ({failure.error_type})"
        attempts.schedule_retry(unit, step, attempt, note, delay=failure.retry_in, given=given)
        return str(S.RETRYING)
    unit.step_failed(step.name, failure.as_error(step.name))
    return str(S.FAILED)


def _may_retry(unit: Unit, step: StepDefinition, attempt: int, failure: Failure) -> bool:
    """The budget counts this step's failed attempts since it was last reset by an operator's
    retry; attempts lost with their worker do not use it up. A task step with no retry policy
    of its own has its Celery task's: the task asked for another attempt (``Task.retry``
    refuses one past its ``max_retries``)."""
    if step.type is StepType.TASK and "retry" not in step.model_fields_set:
        return failure.retry_in is not None
    failures, lost = unit.runs.failures(step.name, WORKER_LOST)
    return step.retry.allows_another(failures - lost)


def fire_timer(unit: Unit, run: StepRunRecord) -> bool:
    """A timer step is due: it succeeds and the workflow moves on; a wait step's timeout is due:
    it fails. Early or stale: False."""
    timed = run.step_type == StepType.TIMER or (run.step_type == StepType.WAIT and run.not_before is not None)
    if run.status != S.WAITING or not timed or run.superseded:
        return False
    if run.not_before is not None and run.not_before - TIMER_TOLERANCE > unit.now:
        unit.redispatch(run)  # a message that came early: publish it again for its time
        return False
    if run.step_type == StepType.WAIT:
        return _wait_timed_out(unit, run)
    output = {"fired_at": unit.now.isoformat()}
    values = {"status": S.SUCCEEDED, "output": output, "finished_at": unit.now}
    if not unit.runs.update(run.id, values, (S.WAITING,)):
        return False
    step = unit.definition.steps_by_name[run.step_name]  # (a timer step)
    unit.step_succeeded(step, run.attempt, S.WAITING, output, "timer fired")
    return True


def _wait_timed_out(unit: Unit, run: StepRunRecord) -> bool:
    step = unit.definition.step(run.step_name)
    message = f"no signal {step.waits_for!r} within {step.timeout:g} s"
    values = {
        "status": S.FAILED,
        "finished_at": unit.now,
        "error_type": "timeout",
        "error_message": message,
    }
    if not unit.runs.update(run.id, values, (S.WAITING,)):
        return False
    unit.count(StepType.WAIT, S.WAITING, S.FAILED)
    unit.event(run.step_name, run.attempt, S.WAITING, S.FAILED, message)
    unit.step_failed(
        run.step_name, {"step": run.step_name, "type": "timeout", "message": message, "code": None}
    )
    unit.settle()
    return True


def recover_lost(unit: Unit, run: StepRunRecord, max_losses: int) -> bool:
    """The worker running ``run`` stopped heartbeating: this attempt is lost; run it again."""
    message = f"worker {run.worker} stopped heartbeating"
    if not _end_running(unit, run, WORKER_LOST, message):
        return False
    step = unit.definition.step(run.step_name)
    if run.item_index is not None:
        _, losses = unit.runs.failures(step.name, WORKER_LOST, run.item_index)
        kind = FailureKind.TRANSIENT if losses < max_losses else FailureKind.FATAL
        lost = f"{message} ({losses} time(s))" if kind is FailureKind.FATAL else message
        maps.item_failed(
            unit, run, step.name, run.item_index, run.attempt, Failure(kind, WORKER_LOST, lost, 0)
        )
        unit.settle()
        return True
    _, losses = unit.runs.failures(step.name, WORKER_LOST)
    if losses < max_losses:
        attempts.rerun(unit, step, run.attempt, f"attempt {run.attempt} lost with its worker", run.input)
    else:
        error = {
            "step": step.name,
            "type": WORKER_LOST,
            "message": f"lost its worker {losses} times",
            "code": None,
        }
        unit.step_failed(step.name, error)
    unit.settle()
    return True


def time_out(unit: Unit, run: StepRunRecord) -> bool:
    """``run`` is past its deadline: the attempt fails with a timeout, retried like any transient error."""
    step = unit.definition.step(run.step_name)
    message = f"ran past its timeout of {step.timeout:g}s"
    if not _end_running(unit, run, TIMEOUT, message):
        return False
    failure = Failure(FailureKind.TRANSIENT, TIMEOUT, message, _elapsed_ms(unit, run) or 0)
    if run.item_index is not None:
        maps.item_failed(unit, run, step.name, run.item_index, run.attempt, failure)
    else:
        _after_failure(unit, step, run.attempt, failure, run.input)
    unit.settle()
    if run.worker:
        own_task = task_id(unit.id, run.step_name, run.attempt, run.item_index)
        unit.revocations.append((run.task_id or own_task, True))
    return True


def _end_running(unit: Unit, run: StepRunRecord, error_type: str, message: str) -> bool:
    values = {
        "status": S.FAILED,
        "error_type": error_type,
        "error_message": message,
        "finished_at": unit.now,
        "duration_ms": _elapsed_ms(unit, run),
    }
    if not unit.runs.update(run.id, values, (S.RUNNING,)):
        return False
    if run.item_index is None:  # (an item's count moves with what becomes of it: decisions.maps)
        unit.count(run.step_type, S.RUNNING, S.FAILED)
    details: dict[str, Any] = {"step": run.step_name, "type": error_type, "message": message, "code": None}
    if run.item_index is not None:
        details["index"] = run.item_index
    unit.event(run.step_name, run.attempt, S.RUNNING, S.FAILED, f"{error_type}: {message}", details)
    return True


def _elapsed_ms(unit: Unit, run: StepRunRecord) -> int | None:
    if run.started_at is None:
        return None
    return int((unit.now - run.started_at).total_seconds() * 1000)


def decide(
    facts: Facts,
    make: Callable[..., Unit],  # of the facts, and rng=
    act: Callable[[Unit], T],
    load: Callable[[Missing], Any],
    seed: int,
) -> tuple[Unit, T]:
    """The unit ``act`` decided on, from ``facts`` and what ``load`` adds, and what it returned.
    Every round draws the same random numbers (``seed``), so a retry's backoff does not change
    with the facts the decision had to ask for. Each round knows more than the one before (the
    second time outputs are asked for, all of them are loaded), so the rounds end."""
    while True:
        unit = make(facts, rng=random.Random(seed))
        try:
            result = act(unit)
            if unit.opening:  # (map and workflow steps opened: decisions.maps starts them)
                maps.start_opened(unit)
            delivery.conclude(unit)
        except Missing as missing:
            if missing.what == OUTPUTS and facts.outputs_of:
                missing = Missing(OUTPUTS)  # a second time: every output, at once
            known = facts.loaded(missing, load)
            if known == facts:
                raise AssertionError(f"a decision on {facts.record.id} asked again for {missing}") from None
            facts = known
            continue
        return unit, result


def unread(missing: Missing) -> Any:
    """How a decision that cannot read (made outside a transaction) meets a need: it cannot."""
    raise missing
