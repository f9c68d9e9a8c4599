"""The chaos workload: chains with side effects counted in a ledger, fan-outs with a join,
timers, maps and child workflows; and what a run left behind (statuses, lost and duplicated
side effects, attempts run twice, repairs in the history)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.store.repository import Store

CHILD = WorkflowBuilder("chaos-child").agent("c0", "echo").agent("c1", "echo")


def definitions() -> list[Any]:
    chain = WorkflowBuilder("chaos-chain")
    for index in range(5):
        chain.agent(f"s{index}", "echo", config={"sleep": 0.02})
    fan = WorkflowBuilder("chaos-fan").agent("start", "echo")
    branches = [f"b{index}" for index in range(20)]
    for branch in branches:
        fan.agent(branch, "echo", after="start")
    fan.agent("join", "echo", after=branches)
    timer = (
        WorkflowBuilder("chaos-timer").agent("before", "echo").timer("nap", delay=2).agent("after", "echo")
    )
    mapped = {
        "name": "chaos-map",
        "steps": [
            {"name": "list", "agent": "lister"},
            {
                "name": "each",
                "type": "map",
                "items": "steps.list.items",
                "agent": "mapper",
                "max_concurrency": 5,
            },
        ],
    }
    parent = {
        "name": "chaos-parent",
        "steps": [
            {"name": "first", "agent": "echo"},
            {"name": "child", "type": "workflow", "workflow": "chaos-child"},
        ],
    }
    return [CHILD, chain, fan, timer, mapped, parent]


KINDS = ("chaos-chain", "chaos-fan", "chaos-timer", "chaos-map", "chaos-parent")


def start(engine: Engine, executions: int, ledger: Path) -> list[str]:
    for definition in definitions():
        engine.register(definition)
    ids = []
    for index in range(executions):
        kind = KINDS[index % len(KINDS)]
        data = {"n": 10} if kind == "chaos-map" else {}
        ids.append(engine.start(kind, data, metadata={"ledger": str(ledger)}).id)
    return ids


def ledger_lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if len(line.split()) == 5]


@dataclass
class Outcome:
    statuses: dict[str, int]
    all_terminal: bool
    steps: int  # side effects expected: one per succeeded agent step or map item
    lost: int  # succeeded without a side effect
    duplicates: int  # side effects beyond the first
    attempts_twice: int  # one attempt's side effect from two processes
    repairs: int  # events in the history naming a repair

    @property
    def completed(self) -> bool:
        return self.statuses.get("completed", 0) == sum(self.statuses.values())


REPAIR_WORDS = ("reconciler", "re-dispatched", "redispatched", "lost", "re-planned", "republished")


def outcome(store: Store, ids: list[str], ledger: Path) -> Outcome:
    lines = ledger_lines(ledger)
    effects = Counter((execution, step) for execution, step, *_ in lines)
    by_attempt: dict[tuple[str, str, str], set[str]] = {}
    for execution, step, attempt, pid, _ in lines:
        by_attempt.setdefault((execution, step, attempt), set()).add(pid)
    statuses: Counter[str] = Counter()
    expected: set[tuple[str, str]] = set()
    repairs = 0
    every = [*ids]
    for execution_id in every:
        record = store.get_execution(execution_id)
        statuses[record.status] += 1
        for run in store.step_runs(execution_id, items=True):
            item = run.step_type == "map" and run.item_index is not None
            if run.status == "succeeded" and (run.step_type == "agent" or item):
                name = run.step_name if run.item_index is None else f"{run.step_name}[{run.item_index}]"
                expected.add((execution_id, name))
        repairs += sum(
            1 for e in store.events(execution_id) if any(w in (e.reason or "") for w in REPAIR_WORDS)
        )
        every.extend(child.id for child in store.children(execution_id, limit=100) if child.id not in every)
    top = Counter(store.get_execution(i).status for i in ids)
    return Outcome(
        statuses=dict(top),
        all_terminal=all(status in ("completed", "failed", "cancelled") for status in statuses),
        steps=len(expected),
        lost=sum(1 for key in expected if effects[key] == 0),
        duplicates=sum(count - 1 for key, count in effects.items() if count > 1),
        attempts_twice=sum(1 for pids in by_attempt.values() if len(pids) > 1),
        repairs=repairs,
    )
