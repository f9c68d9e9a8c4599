"""Running a registered version's own cases (``POST /testing/runs``), and keeping the result.

A run is bounded: each has a throwaway database of its own, at most ``slots`` runs go on at
once in a process (another is refused, :class:`~workflow_engine.errors.TooManyAttempts`), and
the run stops at its time limit, each case still running then failed with the reason.
"""

from __future__ import annotations

import threading
import time

from workflow_engine.agents import REGISTRY, AgentRegistry
from workflow_engine.definitions.loader import load
from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.errors import TooManyAttempts
from workflow_engine.settings import Settings
from workflow_engine.store import test_runs
from workflow_engine.store.repository import Store
from workflow_engine.store.test_runs import TestRunRecord
from workflow_engine.testing.cases import Limits, run_cases

_SLOTS: dict[int, threading.BoundedSemaphore] = {}  # runs going on in this process, by size
_SLOTS_LOCK = threading.Lock()


def _slots(size: int) -> threading.BoundedSemaphore:
    with _SLOTS_LOCK:
        return _SLOTS.setdefault(size, threading.BoundedSemaphore(size))


def run_registered(
    store: Store,
    workflow: str,
    version: str | None,
    owner_id: int,
    visible_to: int | None = None,
    agents: AgentRegistry = REGISTRY,
    settings: Settings | None = None,
) -> TestRunRecord:
    """Run the cases of ``workflow`` at ``version`` (None: the latest), its child workflows as
    registered, in a harness of its own, within ``settings``' limits for test runs; the
    result, kept."""
    settings = settings or Settings.model_construct()  # (without one: the defaults, not the environment)
    record = store.get_workflow(workflow, version, visible_to=visible_to)
    definition = load(record.document)
    definitions = [definition, *_children(store, definition, visible_to)]
    limits = Limits(settings.test_run_timeout, settings.test_run_max_items)
    slots = _slots(settings.test_run_slots)
    if not slots.acquire(blocking=False):
        raise TooManyAttempts(
            f"{settings.test_run_slots} test run(s) are going on in this API process "
            "(WFE_TEST_RUN_SLOTS): try again later",
            retry_after=max(1, round(settings.test_run_timeout)),
        )
    began = time.perf_counter()
    try:
        results = run_cases(definitions, names=[definition.name], agents=agents, limits=limits)
    finally:
        slots.release()
    values = {
        "workflow_id": record.id,
        "workflow_name": record.name,
        "workflow_version": record.version,
        "owner_id": owner_id,
        "passed": sum(r.passed for r in results),
        "failed": sum(not r.passed for r in results),
        "cases": [r.document() for r in results],
        "seconds": round(time.perf_counter() - began, 4),
    }
    with store.transaction() as tx:
        return test_runs.save(tx, values)


def _children(
    store: Store, definition: WorkflowDefinition, visible_to: int | None
) -> list[WorkflowDefinition]:
    """The child workflows ``definition`` starts, and theirs, as registered (one version each)."""
    found: dict[str, WorkflowDefinition] = {definition.name: definition}
    pending = list(definition.children)
    while pending:
        name, version = pending.pop()
        if name in found:
            continue
        child = load(store.get_workflow(name, version, visible_to=visible_to).document)
        found[name] = child
        pending.extend(child.children)
    return [d for name, d in found.items() if name != definition.name]
