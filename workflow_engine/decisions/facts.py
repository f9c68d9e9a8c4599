"""What a decision knows about an execution, as plain data, and how it asks for more.

A :class:`~workflow_engine.decisions.unit.Unit` decides from :class:`Facts` alone. The caller
loads as little as it can (the execution's row; a worker's next outcome brings even that with
it), and a decision that needs more raises :class:`Missing`, naming what: the caller loads it
and decides again from the start (deciding is pure, so a second time gives the same changes).
A path that cannot load, such as an outcome recorded in one round trip, takes a :class:`Missing`
as "decide this under the lock".

The runs of the execution as the decision leaves them are its own view
(:class:`~workflow_engine.decisions.unit.Runs`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from workflow_engine.store.records import ExecutionRecord, SignalRecord, StepRunRecord

OUTPUTS, RUNS, ATTEMPTS, CAPACITY = "outputs", "runs", "attempts", "capacity"
# a map step's items: the runs of one item, the next pending items, the outputs of them all
ITEM_RUNS, PENDING_ITEMS, RESULTS = "item runs", "pending items", "results"
SIGNALS = "signals"  # the signals of one name kept for the execution


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
