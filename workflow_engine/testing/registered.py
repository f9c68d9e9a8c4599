"""Running a registered version's own cases (``POST /testing/runs``), and keeping the result."""

from __future__ import annotations

import time

from workflow_engine.agents import REGISTRY, AgentRegistry
from workflow_engine.definitions.loader import load
from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.store import test_runs
from workflow_engine.store.repository import Store
from workflow_engine.store.test_runs import TestRunRecord
from workflow_engine.testing.cases import run_cases


def run_registered(
    store: Store,
    workflow: str,
    version: str | None,
    owner_id: int,
    visible_to: int | None = None,
    agents: AgentRegistry = REGISTRY,
) -> TestRunRecord:
    """Run the cases of ``workflow`` at ``version`` (None: the latest), its child workflows as
    registered, in a harness of its own; the result, kept."""
    record = store.get_workflow(workflow, version, visible_to=visible_to)
    definition = load(record.document)
    definitions = [definition, *_children(store, definition, visible_to)]
    began = time.perf_counter()
    results = run_cases(definitions, names=[definition.name], agents=agents)
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
