"""An outcome whose commit succeeds on the server while the worker sees a transient error.

The worker retries recording the outcome (``retrying`` around ``Recorder.record``). The
retry must answer what the committed attempt decided, and publish the runs that decision
queued, rather than report the attempt as discarded and leave its next step to the reconciler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest

from tests.support.harness import Harness
from workflow_engine.decisions.outcomes import Claim, Finished, Outcome
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import StoreError
from workflow_engine.store.transaction import Tx
from workflow_engine.worker.reports import Attempted


@pytest.fixture
def pg_harness(new_database_url: Callable[[str], str]) -> Iterator[Harness]:
    harness = Harness(new_database_url("postgresql"))
    try:
        yield harness
    finally:
        harness.close()


class LostCommitAnswer:
    """Wraps the store's outcome transaction: once armed, the next one that commits is
    followed by a transient error, as when the link drops while COMMIT's answer is on its way.
    ``seen`` is what another connection read of the committed run at that moment."""

    def __init__(self, harness: Harness, execution_id: str, step: str) -> None:
        self.harness = harness
        self.execution_id = execution_id
        self.step = step
        self.real = harness.store.pipelined
        self.armed = False
        self.seen: list[str] = []

    @contextmanager
    def pipelined(self, now: datetime | None = None) -> Iterator[Tx]:
        with self.real(now) as tx:
            yield tx
        # the real transaction has exited cleanly: its COMMIT was sent and answered
        if self.armed:
            self.armed = False
            self.seen = [run.status for run in self.harness.runs(self.execution_id, self.step)]
            raise StoreError(
                "database error: server closed the connection unexpectedly",
                transient=True,
                unreachable=True,
            )


def deliver_next(harness: Harness) -> Attempted | None:
    """Deliver the first queued step message, as the harness does, keeping what the
    executor made of the attempt."""
    message = harness.broker.queue.pop(0)
    return harness.executor.execute(message.run_id, message.task_id)


def test_a_finish_retried_after_its_commit_reports_the_outcome_and_publishes_the_next_step(
    pg_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = pg_harness
    harness.register(WorkflowBuilder("chain").agent("a").agent("b"))
    execution = harness.start("chain")
    fault = LostCommitAnswer(harness, execution.id, "a")
    monkeypatch.setattr(harness.store, "pipelined", fault.pipelined)
    finish = harness.coordinator.recorder.record
    reports: list[str] = []  # what each call of record answered, or raised

    def recorded(claim: Claim, outcome: Outcome, in_place: str | None = None) -> Finished:
        try:
            finished = finish(claim, outcome, in_place=in_place)
        except StoreError as error:
            reports.append(f"raised {error}")
            raise
        reports.append(finished.result)
        return finished

    monkeypatch.setattr(harness.coordinator.recorder, "record", recorded)
    if [m.step for m in harness.broker.queue] != ["a"]:
        pytest.fail(f"the first message is not a's alone: {harness.broker.queue}")
    fault.armed = True

    attempted = deliver_next(harness)

    if fault.armed or fault.seen != ["succeeded"]:
        pytest.fail(f"the fault did not follow a commit of a's success (seen: {fault.seen})")
    assert attempted is not None
    assert attempted.result == "succeeded", f"record answered {reports} after the lost answer"
    assert [(m.step, m.kind) for m in harness.broker.queue] == [("b", "step")]
    harness.work()  # messages only: no reconciler pass
    assert harness.record(execution.id).status == "completed"
    assert harness.calls == [("a", 1), ("b", 1)]
