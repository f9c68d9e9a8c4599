"""Why is this step not running? One sentence for each step that is not, from what the
execution's row, the step's latest run and the workers' heartbeats say. Pure."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from workflow_engine.core.graph import Graph
from workflow_engine.core.states import ExecutionStatus as E
from workflow_engine.core.states import StepStatus as S
from workflow_engine.definitions.model import StepDefinition, StepType
from workflow_engine.store.records import StepRunRecord

DONE = (S.SUCCEEDED, S.SKIPPED)


@dataclass(frozen=True)
class Situation:
    """What the sentences are made from."""

    execution_status: str
    execution_reason: str | None  # the view's: "waiting for a concurrency slot"
    statuses: Mapping[str, str]  # each step's current status
    live_queues: Collection[str] | None  # queues some live worker consumes (None: unknown)
    default_queue: str
    now: datetime


def why(step: StepDefinition, run: StepRunRecord | None, graph: Graph, situation: Situation) -> str | None:
    """The reason ``step`` (its latest run ``run``) is not running, or None when it runs or ended."""

    def pending() -> str:
        statuses = situation.statuses
        upstream = [e.source for e in graph.incoming[step.name] if statuses.get(e.source) not in DONE]
        if upstream:
            return f"waits for {_names(upstream)} to finish"
        if situation.execution_status in (E.FAILED, E.CANCELLED, E.COMPLETED):
            return f"never started: the execution {situation.execution_status}"
        return "about to be queued (a map's window, or the coordinator, holds it)"

    return _reason(step, run, situation.statuses.get(step.name, S.PENDING), situation, pending)


def why_item(step: StepDefinition, run: StepRunRecord, situation: Situation) -> str | None:
    """The reason an item of the map ``step`` (its run ``run``) is not running, or None."""

    def pending() -> str:
        if situation.execution_status in (E.FAILED, E.CANCELLED, E.COMPLETED):
            return f"never started: the execution {situation.execution_status}"
        if step.max_concurrency:
            return f"waits for a place in the map's window: {step.max_concurrency} items at a time"
        return "about to be queued"

    return _reason(step, run, run.status, situation, pending)


def _reason(
    step: StepDefinition,
    run: StepRunRecord | None,
    status: str,
    situation: Situation,
    pending: Callable[[], str],
) -> str | None:
    if status in (S.RUNNING, S.SUCCEEDED, S.FAILED, S.CANCELLED):
        return None
    if status == S.SKIPPED:
        return "skipped: its condition was false, or a step it needs did not run"
    if situation.execution_status == E.PAUSED:
        return "the execution is paused; resume it to go on"
    if situation.execution_status == E.INITIALIZED and situation.execution_reason:
        return f"the execution is {situation.execution_reason}"
    if status == S.PENDING:
        return pending()
    if status == S.RETRYING:
        when = _at(run.not_before if run else None, situation.now)
        error = f" after {run.error_type}: {run.error_message}" if run and run.error_type else ""
        return f"waits to retry{error}; the next attempt starts {when}"
    if status == S.QUEUED:
        if run is not None and run.not_before is not None and run.not_before > situation.now:
            limit = f" ({step.rate_limit})" if step.rate_limit else ""
            return f"held by its rate limit{limit}; it may start {_at(run.not_before, situation.now)}"
        queue = step.queue or situation.default_queue
        if situation.live_queues is not None and queue not in situation.live_queues:
            return f"queued on {queue}, which no live worker consumes"
        return f"queued on {queue}, waiting for a free worker"
    if status == S.WAITING:
        return _waiting(step, run, situation)
    return None


def _waiting(step: StepDefinition, run: StepRunRecord | None, situation: Situation) -> str:
    if run is not None and run.error_type:
        return (
            f"waits for a fix after {run.error_type}: {run.error_message}; "
            "retry the execution, or complete the step by hand"
        )
    if step.type is StepType.HUMAN:
        who = " or ".join(step.assignees) if step.assignees else "a person"
        return f"waits for {who} to complete it"
    if step.type is StepType.WAIT:
        deadline = f"; it fails {_at(run.deadline_at, situation.now)}" if run and run.deadline_at else ""
        return f"waits for the signal '{step.signal or step.name}'{deadline}"
    if step.type is StepType.TIMER:
        when = run.not_before or run.deadline_at if run else None
        return f"sleeps until {_at(when, situation.now)}"
    if step.type in (StepType.WORKFLOW, StepType.MAP):
        return "waits for its child executions"
    return "waits"


def _names(names: list[str]) -> str:
    quoted = [f"'{name}'" for name in names[:5]]
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return ", ".join(quoted) + more


def _at(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "soon"
    seconds = (when - now).total_seconds()
    stamp = when.strftime("%Y-%m-%d %H:%M:%S UTC")
    if seconds <= 0:
        return f"now (due {stamp})"
    if seconds < 120:
        return f"in {seconds:.0f} s ({stamp})"
    return f"at {stamp}"
