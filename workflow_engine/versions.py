"""Workflow versions checked before they are stored, and deleted while they never ran.

A (name, version) is immutable once registered, so a version is checked against the agents known
to serve it first (:mod:`workflow_engine.definitions.agents` has the rule): those the live
workers report (a worker is live while its last heartbeat is at most ``worker_lost_after``
seconds old, as the reconciler counts it) and those of local agent modules. When nothing is
known (no live worker, no module) the check cannot be made and registration goes on: versions
are registered before workers are deployed, as a Temporal or Airflow deployment does; the
caller says so. A version that no execution ever used may be deleted, by its name's owner or an
admin, which frees its (name, version) for another body.

Workflows are listed a page at a time without reading their documents (:func:`listing`).

``wfe validate``, ``wfe register``, ``wfe workflows delete``, ``POST /workflows``, ``GET
/workflows`` and ``DELETE /workflows/{name}/versions/{version}`` call these.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from workflow_engine.definitions.agents import AgentCheck, UnknownAgents, check_agents
from workflow_engine.definitions.loader import Source, load
from workflow_engine.definitions.model import WorkflowDefinition, parse_version
from workflow_engine.definitions.queues import queue_problems
from workflow_engine.errors import (
    Conflict,
    DefinitionError,
    PermissionDenied,
    WorkflowEngineError,
    WorkflowNotFound,
)
from workflow_engine.settings import Settings
from workflow_engine.store import catalogue
from workflow_engine.store import schedules as schedule_rows
from workflow_engine.store.catalogue import Order
from workflow_engine.store.opening import read_existing
from workflow_engine.store.records import WorkflowRecord
from workflow_engine.store.repository import Store

if TYPE_CHECKING:
    from workflow_engine.engine import Engine

READ_TIMEOUT = 5  # seconds `wfe validate` waits for a database server to answer


def unchecked_reason(settings: Settings) -> str:
    """Why agents could not be checked, and how to check them."""
    return (
        "agents not checked: no live worker reports its agents (a worker is live for "
        f"{settings.worker_lost_after:g} s after its last heartbeat: WFE_WORKER_LOST_AFTER) and "
        "no agent modules were given; start a worker, or pass --agents MODULES"
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


def live_agents(store: Store, settings: Settings) -> set[str]:
    """The agents the live workers report (a heartbeat within ``worker_lost_after`` seconds)."""
    return store.known_agents(store.clock.now() - timedelta(seconds=settings.worker_lost_after))


def live_agents_of(settings: Settings) -> tuple[set[str], str | None]:
    """The agents the live workers of ``settings``' database report, read without creating or
    upgrading it (no database yet: none); and why they could not be read, if so."""
    try:
        found = read_existing(settings.database_url, lambda store: live_agents(store, settings), READ_TIMEOUT)
    except WorkflowEngineError as exc:
        why = one_line(str(exc))
        return set(), f"agents not checked against live workers: could not read the database ({why})"
    return found or set(), None


def known_agents(engine: Engine, modules: Collection[str] = ()) -> frozenset[str] | None:
    """The agents the live workers report and ``modules`` (agents of local modules); None when
    there are none."""
    known = live_agents(engine.store, engine.settings) | set(modules)
    return frozenset(known) or None


def reserved_queues(settings: Settings) -> dict[str, str]:
    """The engine's own broker queues, each with what it is."""
    reserved = {
        settings.coordinator_queue: f"the coordinators' queue ({settings.coordinator_queue})",
        settings.steps_queue: f"the steps queue every worker consumes ({settings.steps_queue})",
    }
    if settings.intake_queue:
        reserved[settings.intake_queue] = f"the intake queue of wfe.start_workflow ({settings.intake_queue})"
    return reserved


def check(engine: Engine, definition: WorkflowDefinition, modules: Collection[str] = ()) -> AgentCheck:
    """The agents ``definition`` names that no live worker and no module serves."""
    return check_agents(definition, known_agents(engine, modules))


def register(
    engine: Engine,
    source: Source,
    *,
    allow_unknown_agents: bool = False,
    modules: Collection[str] = (),
    created_by: int | None = None,
    visible_to: int | None = None,
    require_compatible: bool = False,
) -> tuple[WorkflowRecord, AgentCheck]:
    """Register a version unless a step's queue is one of the engine's own
    (:class:`DefinitionError`) or it names an agent known to no live worker and no module
    (:class:`UnknownAgents`, nothing stored), or ``allow_unknown_agents``; with what the
    check found."""
    definition = source if isinstance(source, WorkflowDefinition) else load(source)
    refused = queue_problems(definition, reserved_queues(engine.settings), engine.settings.queue_prefix)
    if refused:
        raise DefinitionError(refused, f"{definition.name} {definition.version}")
    found = check(engine, definition, modules)
    if found.unknown and not allow_unknown_agents:
        raise UnknownAgents(found, f"{definition.name} {definition.version}")
    record = engine.register(
        definition, created_by=created_by, visible_to=visible_to, require_compatible=require_compatible
    )
    return record, found


@dataclass(frozen=True)
class WorkflowSummary:
    """A workflow as a listing shows it: its versions (newest first) without their documents."""

    name: str
    description: str  # the latest version's
    latest_version: str
    versions: list[str]


MAX_PAGE = 1000


def listing(
    engine: Engine, visible_to: int | None, limit: int = 100, offset: int = 0, order: Order = "name"
) -> list[WorkflowSummary]:
    """One page of the workflows ``visible_to`` may see (None: every one), by name or newest
    first; no document is read."""
    names = catalogue.names_page(engine.store, visible_to, min(limit, MAX_PAGE), offset, order)
    return _summaries(engine, names, visible_to)


def summary(engine: Engine, name: str, visible_to: int | None) -> WorkflowSummary:
    """Workflow ``name``'s versions, without their documents (:class:`WorkflowNotFound`)."""
    found = _summaries(engine, [name], visible_to)
    if not found:
        raise WorkflowNotFound(name)
    return found[0]


def _summaries(engine: Engine, names: list[str], visible_to: int | None) -> list[WorkflowSummary]:
    by_name: dict[str, list[catalogue.VersionRow]] = {}
    for row in catalogue.versions_of(engine.store, names, visible_to):
        by_name.setdefault(row.name, []).append(row)
    for found in by_name.values():
        found.sort(key=lambda row: parse_version(row.version), reverse=True)
    described = catalogue.descriptions(engine.store, [found[0].id for found in by_name.values()])
    return [
        WorkflowSummary(
            name=name,
            description=described.get(by_name[name][0].id, ""),
            latest_version=by_name[name][0].version,
            versions=[row.version for row in by_name[name]],
        )
        for name in names
        if name in by_name
    ]


def delete(
    engine: Engine, name: str, version: str, owner_id: int | None, visible_to: int | None
) -> WorkflowRecord:
    """Delete a version no execution ever used, that no schedule and no other workflow would
    start: its (name, version) may be registered again, with any body; the name stays its
    owner's. ``owner_id`` (None: an admin) must own the name; a version ``visible_to`` may not
    see is not found."""
    store = engine.store
    record = store.get_workflow(name, version, visible_to=visible_to)
    if owner_id is not None and record.created_by != owner_id:
        deployment = record.created_by == store.system_user_id()
        who = "the deployment" if deployment else f"user {store.get_user_by_id(record.created_by).username!r}"
        raise PermissionDenied(
            f"workflow {name} belongs to {who}: only its owner or an admin may delete its versions"
        )
    others = [r for r in store.list_workflows(None, name) if r.version != version]
    with store.reading() as db:
        for schedule in schedule_rows.naming(db, name):
            if schedule.version == version or (schedule.version is None and not others):
                raise Conflict(
                    f"{name} {version} is started by schedule {schedule.name!r}: delete the schedule first"
                )
    for other in store.list_workflows(None):
        if other.id == record.id:
            continue
        step = _child_step(other.document, name, version, alone=not others)
        if step is not None:
            raise Conflict(
                f"{name} {version} is started by step {step!r} of {other.name} {other.version}: "
                "a version another one starts cannot be deleted"
            )
    return store.delete_workflow_version(record.id)


def _child_step(document: dict[str, Any], name: str, version: str, alone: bool) -> str | None:
    """The step of ``document`` that starts ``name`` at ``version`` (or at its latest, when
    ``version`` is the only one: ``alone``), if any."""
    for step in document.get("steps", ()):
        if step.get("workflow") != name:
            continue
        if step.get("version") == version or (step.get("version") is None and alone):
            return str(step.get("name"))
    return None
