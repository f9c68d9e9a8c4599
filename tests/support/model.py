"""What the decision core alone predicts for one execution: the same decisions, applied to
dictionaries instead of a database, with a broker that is a list.

:class:`Model` makes every decision the coordinator makes (starting, outcomes, timers, verbs)
through :func:`workflow_engine.decisions.steps.decide` on a
:class:`~workflow_engine.decisions.unit.Unit`, from facts it holds in full, and applies the
changes the way the store does: guarded run changes, superseded steps, new runs with ids, the
execution's row (whose revision moves on) and its events. A worker's claim is applied as the
store applies it (a claimable run of a live execution becomes running, with its event). Its
clock and message order follow :class:`tests.support.harness.Harness`, so both can be driven
through the same deliveries and compared event by event.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from workflow_engine.core.states import CLAIMABLE_STEP, TERMINAL_EXECUTION, StepStatus
from workflow_engine.decisions import steps
from workflow_engine.decisions.dispatch import Dispatch
from workflow_engine.decisions.facts import Facts, Missing
from workflow_engine.decisions.outcomes import Claim, Outcome
from workflow_engine.decisions.runs import new_execution
from workflow_engine.decisions.unit import Unit
from workflow_engine.definitions import WorkflowDefinition
from workflow_engine.settings import Settings
from workflow_engine.store.records import ExecutionRecord, StepRunRecord, event_row

T = TypeVar("T")
_RUN_FIELDS = {f.name for f in fields(StepRunRecord)}
WORKER = "harness-worker:1"  # the harness's worker


class Model:
    def __init__(self, definition: WorkflowDefinition, settings: Settings, now: datetime) -> None:
        self.definition = definition
        self.settings = settings
        self.now = now
        self.rng = random.Random(1)  # drawn from as the harness's coordinator draws
        self.record: ExecutionRecord | None = None
        self.runs: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.queue: list[Dispatch] = []
        self._ids = iter(range(1, 1_000_000))

    # deciding and applying

    def decide(
        self, actor: str, act: Callable[[Unit], T], prepare: Callable[[Unit], None] | None = None
    ) -> T:
        assert self.record is not None
        facts = Facts(
            self.now,
            self.record,
            outputs={
                r["step_name"]: r.get("output") for r in self._live() if r["status"] == StepStatus.SUCCEEDED
            },
            outputs_of=None,
            runs=tuple(
                self._record(row) for row in sorted(self._live(), key=lambda r: (r["queued_at"], r["id"]))
            ),
            attempts=self._attempts(),
        )

        def make(known: Facts, rng: random.Random) -> Unit:
            unit = Unit(known, self.definition, self.settings, actor, rng)
            if prepare is not None:
                prepare(unit)
            return unit

        def never(missing: Missing) -> Any:
            raise AssertionError(f"the model holds every fact, yet {missing} was asked for")

        unit, result = steps.decide(facts, make, act, never, self.rng.getrandbits(64))
        self._apply(unit)
        return result

    def _apply(self, unit: Unit) -> None:
        for change in unit.runs.changes:
            for run_id in change.ids:
                row = self.runs[run_id]
                assert row["status"] in change.expect and not row["superseded"], (row, change)
                row.update(change.values)
        for row in self.runs.values():
            if row["step_name"] in unit.runs.superseded:
                row["superseded"] = True
        assert unit.take is None, "the model carries nothing"
        values = unit.row_values()
        if values is None:
            self.queue.extend(unit.dispatches)  # a message published again: nothing written
            return
        ids = [next(self._ids) for _ in unit.new]
        for run_id, row in zip(ids, unit.new, strict=True):
            self.runs[run_id] = {**row, "id": run_id, "output": None}
        unit.inserted(ids)
        assert self.record is not None
        self.record = replace(self.record, **values, revision=self.record.revision + 1)
        self.events.extend(unit.events)
        self.queue.extend(unit.dispatches)

    def _live(self) -> list[dict[str, Any]]:
        return [row for row in self.runs.values() if not row["superseded"]]

    def _attempts(self) -> dict[str, int]:
        latest: dict[str, int] = {}
        for row in self.runs.values():
            latest[row["step_name"]] = max(latest.get(row["step_name"], 0), row["attempt"])
        return latest

    @staticmethod
    def _record(row: dict[str, Any]) -> StepRunRecord:
        return StepRunRecord(**{name: row.get(name) for name in _RUN_FIELDS})  # type: ignore[arg-type]

    # driving

    def start(self, input_data: Any, workflow_id: int = 1, mode: str = "auto") -> None:
        class Stored:
            id, name, version = workflow_id, self.definition.name, self.definition.version

        values = new_execution("model", Stored, 1, mode, input_data, {}, None, self.now)
        values["total_steps"] = len(self.definition.steps)
        self.record = ExecutionRecord(**values)
        self.decide("system", steps.begin)

    def deliver_one(self, outcome: Callable[[str, int], Outcome]) -> bool:
        """Deliver the first due message (as :meth:`Harness.deliver_one` does)."""
        if not self.queue:
            return False
        due = [d for d in self.queue if d.eta is None or d.eta <= self.now]
        if not due:
            self.now = min(d.eta for d in self.queue if d.eta is not None)
            return True
        item = due[0]
        self.queue.remove(item)
        if item.kind == "timer":

            def fire(unit: Unit) -> bool:
                run = unit.runs.find(item.run_id)
                return run is not None and steps.fire_timer(unit, run)

            self.decide("timer", fire)
            return True
        claim = self._claim(item.run_id)
        if claim is not None:
            self._finish(claim, outcome(claim.step.name, claim.attempt))
        return True

    def _claim(self, run_id: int) -> Claim | None:
        assert self.record is not None
        row = self.runs[run_id]
        if row["superseded"] or row["status"] not in CLAIMABLE_STEP or row["step_type"] != "agent":
            return None
        if self.record.status in TERMINAL_EXECUTION:
            return None
        self.events.append(
            event_row(
                self.record.id,
                row["step_name"],
                row["attempt"],
                row["status"],
                StepStatus.RUNNING,
                WORKER,
                self.now,
            )
        )
        row.update(status=StepStatus.RUNNING, worker=WORKER, started_at=self.now, carried=False)
        step = self.definition.step(row["step_name"])
        return Claim(
            run_id=run_id,
            execution_id=self.record.id,
            workflow=self.definition.name,
            version=self.definition.version,
            workflow_id=1,
            step=step,
            attempt=row["attempt"],
            input=self.record.input,
            metadata={},
            checkpoint=None,
            worker=WORKER,
            retries=self.record.retries,
            due_at=self.now,
            started_at=self.now,
        )

    def _finish(self, claim: Claim, outcome: Outcome) -> None:
        status, values = steps.attempt_values(outcome, self.now)
        row = self.runs[claim.run_id]
        applied = row["status"] == StepStatus.RUNNING and not row["superseded"] and row["worker"] == WORKER
        if applied:
            row.update(values)

        def act(unit: Unit) -> str:
            return steps.after_attempt(unit, claim, outcome, status) if applied else steps.DISCARDED

        self.decide(WORKER, act)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
