"""Why is this step (or this execution) not running? One sentence for each step that is not,
from what the execution's row, the step's latest run and the workers' heartbeats say; the
execution's is made of its steps'. Pure: the monitor, the command line and the REST API all
show these same sentences."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from workflow_engine.core.graph import Graph
from workflow_engine.core.states import ExecutionStatus as E
from workflow_engine.core.states import StepStatus as S
from workflow_engine.definitions.model import StepDefinition, StepType
from workflow_engine.store.records import StepRunRecord, WorkerRecord

DONE = (S.SUCCEEDED, S.SKIPPED)
ENDED = (E.COMPLETED, E.FAILED, E.CANCELLED)
WAITING_FOR_SLOT = "waiting for a concurrency slot"
SHOWN_STEPS = 3  # (an execution's sentence names this many steps, then counts the rest)


@dataclass(frozen=True)
class Workers:
    """What the workers' heartbeats say, as of ``now``."""

    live_queues: Collection[str] | None  # queues some live worker consumes (None: unknown)
    default_queue: str
    now: datetime


@dataclass(frozen=True)
class Situation:
    """What the sentences are made from."""

    execution_status: str
    execution_reason: str | None  # why it has not started: "waiting for a concurrency slot"
    statuses: Mapping[str, str]  # each step's current status
    live_queues: Collection[str] | None  # queues some live worker consumes (None: unknown)
    default_queue: str
    now: datetime


def live_queues(workers: Iterable[WorkerRecord], now: datetime, stale_after: float) -> set[str]:
    """The queues some worker consumes that was heard from within ``stale_after`` seconds."""
    cutoff = now - timedelta(seconds=stale_after)
    return {queue for worker in workers if worker.last_seen >= cutoff for queue in worker.queues}


PAUSED_REASON = "the execution is paused; resume it to go on"


def row_reason(status: str, concurrency_key: str | None) -> str | None:
    """What the execution's row alone says (a listing's reason): it is paused, or it waits for
    a slot under its concurrency limit."""
    if status == E.PAUSED:
        return PAUSED_REASON
    return WAITING_FOR_SLOT if status == E.INITIALIZED and concurrency_key is not None else None


def step_reasons(
    steps: Iterable[StepDefinition], latest: Mapping[str, StepRunRecord], graph: Graph, situation: Situation
) -> dict[str, str]:
    """Each step's sentence (its latest run in ``latest``), in the given order, for the steps
    that are not running."""
    found = {}
    for step in steps:
        sentence = why(step, latest.get(step.name), graph, situation)
        if sentence is not None:
            found[step.name] = sentence
    return found


def execution_reason(reasons: Mapping[str, str], graph: Graph, situation: Situation) -> str | None:
    """Why the execution is not running (or not all of it), made of its steps' sentences
    (``reasons``, as :func:`step_reasons` gives them): None once it has ended, and None when
    every step that is not running is skipped or merely waits for another to finish."""
    if situation.execution_status in ENDED:
        return None
    if situation.execution_status == E.PAUSED:
        return PAUSED_REASON
    if situation.execution_status == E.INITIALIZED and situation.execution_reason:
        return situation.execution_reason
    statuses = situation.statuses

    def ready(name: str) -> bool:
        return all(statuses.get(edge.source) in DONE for edge in graph.incoming[name])

    held = [
        f"step '{name}' {sentence}"
        for name, sentence in reasons.items()
        if statuses.get(name, S.PENDING) != S.SKIPPED
        and (statuses.get(name, S.PENDING) != S.PENDING or ready(name))
    ]
    if not held:
        return None
    more = len(held) - SHOWN_STEPS
    return "; ".join(held[:SHOWN_STEPS]) + (f"; and {more} more" if more > 0 else "")


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
        return PAUSED_REASON
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
