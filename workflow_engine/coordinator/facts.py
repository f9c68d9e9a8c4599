"""What a decision knows about an execution, as plain data, and how it asks for more.

A :class:`~workflow_engine.coordinator.unit.Unit` decides from :class:`Facts` alone. The caller
loads as little as it can (the execution's row; a worker's next outcome brings even that with
it), and a decision that needs more raises :class:`Missing`, naming what: the caller loads it
and decides again from the start (deciding is pure, so a second time gives the same changes).
A path that cannot load, such as an outcome recorded in one round trip, takes a :class:`Missing`
as "decide this under the lock".

:class:`Runs` is the runs of the execution as the decision has left them so far: the loaded
ones with its changes applied, and the runs it creates, under provisional (negative) ids.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Protocol

from workflow_engine.core.states import StepStatus, check_step_update
from workflow_engine.store.records import ExecutionRecord, SignalRecord, StepRunRecord

OUTPUTS, RUNS, ATTEMPTS, CAPACITY = "outputs", "runs", "attempts", "capacity"
# a map step's items: the runs of one item, the next pending items, the outputs of them all
ITEM_RUNS, PENDING_ITEMS, RESULTS = "item runs", "pending items", "results"
SIGNALS = "signals"  # the signals of one name kept for the execution
_RECORD_FIELDS = frozenset(f.name for f in fields(StepRunRecord))


class Tuning(Protocol):
    """The settings a decision follows (:class:`~workflow_engine.settings.Settings` has them)."""

    @property
    def eta_horizon(self) -> float: ...  # publish with an ETA only this far ahead (seconds)
    @property
    def inline_steps(self) -> int: ...  # 0: no step runs in place, nor is carried
    @property
    def map_max_items(self) -> int: ...  # the longest list a map step takes
    @property
    def map_window(self) -> int: ...  # a map's items queued at once without max_concurrency
    @property
    def max_workflow_depth(self) -> int: ...  # how deep child executions nest


class Missing(Exception):
    """The decision needs facts it was not given: ``what`` (outputs, runs, attempts, capacity, or
    of a map step's items), and for outputs the steps whose outputs (None: every step's). For
    items, ``names`` is the map step and ``key`` the item (item runs) or how many (pending)."""

    def __init__(self, what: str, names: frozenset[str] | None = None, key: int | None = None) -> None:
        super().__init__(what if names is None else f"{what} of {', '.join(sorted(names))}")
        self.what = what
        self.names = names
        self.key = key

    @property
    def step(self) -> str:
        assert self.names is not None and len(self.names) == 1
        return next(iter(self.names))


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known of one execution when a decision starts.

    ``outputs`` holds the outputs of the steps in ``outputs_of`` (None: of every step) whose
    current run succeeded; ``runs`` every run not superseded, oldest first; ``attempts`` the
    latest attempt number of each step that ran (superseded runs included); ``capacity`` how many
    steps the live workers run at once (0: unknown; None: not asked yet, asked of a decision
    that opens more than one step).
    """

    now: datetime
    record: ExecutionRecord
    outputs: Mapping[str, Any] = field(default_factory=dict)
    outputs_of: frozenset[str] | None = frozenset()
    runs: tuple[StepRunRecord, ...] | None = None
    attempts: Mapping[str, int] | None = None
    capacity: int | None = 0
    # of map steps: the runs of some items, the next pending items, the outputs of every item
    item_runs: Mapping[tuple[str, int], tuple[StepRunRecord, ...]] = field(default_factory=dict)
    pending: Mapping[str, tuple[int, tuple[StepRunRecord, ...]]] = field(default_factory=dict)
    results: Mapping[str, Mapping[int, Any]] = field(default_factory=dict)
    # the signals kept (sent, not taken by a wait step yet), by name, oldest first
    signals: Mapping[str, tuple[SignalRecord, ...]] = field(default_factory=dict)

    def kept_signals(self, name: str) -> tuple[SignalRecord, ...]:
        """The signals ``name`` kept for the execution, oldest first."""
        if name not in self.signals:
            raise Missing(SIGNALS, frozenset({name}))
        return self.signals[name]

    def runs_of_item(self, step: str, index: int) -> tuple[StepRunRecord, ...]:
        """The live runs of one item of a map step."""
        if (step, index) not in self.item_runs:
            raise Missing(ITEM_RUNS, frozenset({step}), index)
        return self.item_runs[(step, index)]

    def pending_items(self, step: str, count: int) -> tuple[StepRunRecord, ...]:
        """Up to ``count`` pending items of a map step, lowest index first."""
        asked, known = self.pending.get(step, (0, ()))
        if asked < count:  # (fewer than were asked for: there are no more)
            raise Missing(PENDING_ITEMS, frozenset({step}), count)
        return known[:count]

    def item_outputs(self, step: str) -> Mapping[int, Any]:
        """The outputs of a map step's items that succeeded, by index."""
        if step not in self.results:
            raise Missing(RESULTS, frozenset({step}))
        return self.results[step]

    def partial_runs(self) -> dict[int, StepRunRecord]:
        """The runs known without knowing them all (of map items), by id."""
        found = {run.id: run for runs in self.item_runs.values() for run in runs}
        found.update({run.id: run for _, runs in self.pending.values() for run in runs})
        return found

    def workers_capacity(self) -> int:
        if self.capacity is None:
            raise Missing(CAPACITY)
        return self.capacity

    def output(self, names: Collection[str]) -> dict[str, Any]:
        """The outputs of those of ``names`` whose current run succeeded."""
        if self.outputs_of is not None and not set(names) <= self.outputs_of:
            raise Missing(OUTPUTS, frozenset(names) - self.outputs_of)
        return {name: self.outputs[name] for name in names if name in self.outputs}

    def all_outputs(self) -> Mapping[str, Any]:
        if self.outputs_of is not None:
            raise Missing(OUTPUTS)
        return self.outputs

    def loaded(self, missing: Missing, load: Callable[[Missing], Any]) -> Facts:
        """These facts with what ``missing`` asked for, as ``load`` gives it."""
        found = load(missing)
        if missing.what == OUTPUTS:
            if missing.names is None:
                return replace(self, outputs=dict(found), outputs_of=None)
            known = (self.outputs_of or frozenset()) | missing.names
            return replace(self, outputs={**self.outputs, **found}, outputs_of=known)
        if missing.what == RUNS:
            return replace(self, runs=tuple(found))
        if missing.what == CAPACITY:
            return replace(self, capacity=int(found))
        if missing.what == ITEM_RUNS:
            assert missing.key is not None
            return replace(self, item_runs={**self.item_runs, (missing.step, missing.key): tuple(found)})
        if missing.what == PENDING_ITEMS:
            assert missing.key is not None
            return replace(self, pending={**self.pending, missing.step: (missing.key, tuple(found))})
        if missing.what == RESULTS:
            return replace(self, results={**self.results, missing.step: dict(found)})
        if missing.what == SIGNALS:
            return replace(self, signals={**self.signals, missing.step: tuple(found)})
        assert missing.what == ATTEMPTS, missing.what
        return replace(self, attempts=dict(found))


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
        self._partial = facts.partial_runs()  # known while not every run is
        self.new = new  # the rows of the runs this decision creates, in order
        self.changes: list[RunChange] = []
        self.superseded: set[str] = set()  # steps whose runs this decision supersedes
        self.kept: set[str] = set()  # of them, map steps whose succeeded items are kept

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
