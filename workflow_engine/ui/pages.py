"""What the execution page shows, built from the records it reads (a constant number of
queries, whatever the workflow's size): the DAG laid out once per definition version, each
node's status and the sentence saying why a step is not running, the attempts with the
critical path marked, the children and the history."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from workflow_engine.api.limits import nested_deeper
from workflow_engine.core.graph import Graph
from workflow_engine.core.payloads import MAX_DEPTH
from workflow_engine.core.secrets import masked
from workflow_engine.core.states import StepStatus as S
from workflow_engine.definitions.model import StepDefinition, WorkflowDefinition
from workflow_engine.reasons import Situation, why, why_item
from workflow_engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from workflow_engine.ui import dag
from workflow_engine.views import ExecutionView, StepView, attempt_input

ITEMS_PAGE = 50
HISTORY = 200  # (events shown, the newest first; older ones a page at a time)
SHOWN_CHARS = 4_000  # (of one attempt's input or output on the page: the rest through its link)


@dataclass
class NodeView:
    node: dag.DagNode
    status: str  # the step's, or for a folded group its most urgent member's
    label: str
    histogram: dict[str, int] = field(default_factory=dict)  # folded group's or map items' states
    step: StepView | None = None


@dataclass
class ExecutionPage:
    view: ExecutionView
    layout: dag.Layout
    nodes: list[NodeView]
    reasons: dict[str, str]
    runs: list[StepRunRecord]
    critical: set[int]  # the ids of the runs on the critical path
    events: list[EventRecord]
    last_event_id: int
    flower: str | None
    situation: Situation
    definition: WorkflowDefinition

    def item_reasons(self, runs: list[StepRunRecord]) -> dict[int, str]:
        """Why each of these map items (by run id) is not running, for those that are not."""
        found = {}
        for run in runs:
            sentence = why_item(self.definition.step(run.step_name), run, self.situation)
            if sentence is not None:
                found[run.id] = sentence
        return found

    @property
    def at(self) -> dict[str, dag.DagNode]:
        """Each node by its key."""
        return {node.node.key: node.node for node in self.nodes}


URGENCY = [S.FAILED, S.WAITING, S.RUNNING, S.RETRYING, S.QUEUED, S.PENDING, S.CANCELLED, S.SKIPPED]


@lru_cache(maxsize=256)
def _layout(workflow_id: int, graph: Graph) -> dag.Layout:
    """One layout per registered version (its id), computed once."""
    return dag.layout(graph)


def shown(value: Any) -> tuple[str, int | None]:
    """A payload as the page prints it, indented JSON: cut at ``SHOWN_CHARS`` with its whole
    length beside (a map's ten thousand results never make the page heavy), else whole; its
    secrets as ``***``."""
    value = masked(value)
    compact = json.dumps(value, ensure_ascii=False, default=str)  # (C-fast: indenting is not)
    if len(compact) > SHOWN_CHARS:
        return compact[:SHOWN_CHARS], len(compact)
    return json.dumps(value, indent=2, ensure_ascii=False, default=str), None


def execution_page(
    record: ExecutionRecord,
    view: ExecutionView,
    definition: WorkflowDefinition,
    runs: list[StepRunRecord],
    events: list[EventRecord],
    queues: set[str] | None,
    default_queue: str,
    now: datetime,
    flower: str | None = None,
    last_event_id: int | None = None,
) -> ExecutionPage:
    """What the page shows; ``events`` are the history's newest (or a page of its older ones,
    when ``last_event_id``, the newest, is given: the page follows the history from there)."""
    layout = _layout(record.workflow_id, definition.graph)
    steps = {step.name: step for step in view.steps}
    statuses = {step.name: step.status for step in view.steps}
    latest = _latest_runs(runs)
    situation = Situation(view.status, view.reason, statuses, queues, default_queue, now)
    reasons: dict[str, str] = {}
    for step in definition.steps:
        sentence = why(step, latest.get(step.name), definition.graph, situation)
        if sentence is not None:
            reasons[step.name] = sentence
    nodes = [_node(node, steps, definition) for node in layout.nodes]
    return ExecutionPage(
        view=view,
        layout=layout,
        nodes=nodes,
        reasons=reasons,
        runs=[replace(run, input=attempt_input(run, record.input)) for run in runs if run.item_index is None],
        critical=critical_path(definition.graph, latest),
        events=events,
        last_event_id=last_event_id if last_event_id is not None else events[-1].id if events else 0,
        flower=flower.rstrip("/") if flower else None,
        situation=situation,
        definition=definition,
    )


def _node(node: dag.DagNode, steps: dict[str, StepView], definition: WorkflowDefinition) -> NodeView:
    if node.folded:
        counts = Counter(steps[name].status for name in node.steps)
        status = next((s for s in URGENCY if counts.get(s)), S.SUCCEEDED)
        label = f"{len(node.steps)} steps ({node.steps[0]} …)"
        return NodeView(node, status, label, histogram=dict(counts))
    step = steps[node.steps[0]]
    histogram = {}
    if step.items:
        histogram = {k: v for k, v in step.items.items() if k != "total" and v}
    kind = _kind(definition.step(step.name))
    return NodeView(node, step.status, f"{step.name}{kind}", histogram=histogram, step=step)


def _kind(step: StepDefinition) -> str:
    """What a node's label says of its step besides its name: its type (a task step's Celery
    task), unless it is an agent step."""
    if step.task is not None:
        return f" · {step.task}"
    return "" if step.type.value == "agent" else f" · {step.type.value}"


def _latest_runs(runs: list[StepRunRecord]) -> dict[str, StepRunRecord]:
    latest: dict[str, StepRunRecord] = {}
    for run in runs:
        if run.item_index is not None or run.superseded:
            continue
        if run.step_name not in latest or run.attempt > latest[run.step_name].attempt:
            latest[run.step_name] = run
    return latest


def critical_path(graph: Graph, latest: dict[str, StepRunRecord]) -> set[int]:
    """The runs on the chain of steps that ended last: from the step that finished last, back
    through the predecessor of each that finished last (what held it up)."""
    finished = {name: run for name, run in latest.items() if run.finished_at is not None}
    if not finished:
        return set()
    name: str | None = max(finished, key=lambda n: finished[n].finished_at or datetime.min)
    path: set[int] = set()
    while name is not None:
        path.add(finished[name].id)
        before = [e.source for e in graph.incoming[name] if e.source in finished]
        name = max(before, key=lambda n: finished[n].finished_at or datetime.min) if before else None
    return path


STEPS_PAGE = 100
QUIET = (S.PENDING, S.SUCCEEDED, S.SKIPPED)


def step_page(steps: list[StepView], page: int) -> tuple[list[StepView], int]:
    """The steps table of a large workflow in pages of ``STEPS_PAGE``: those that are neither
    pending, succeeded nor skipped first (what an operator looks for), then the rest, each in
    definition order; a workflow of up to twice a page is shown whole. How many pages there are."""
    if len(steps) <= 2 * STEPS_PAGE:
        return steps, 1
    ordered = [s for s in steps if s.status not in QUIET] + [s for s in steps if s.status in QUIET]
    pages = -(-len(ordered) // STEPS_PAGE)
    page = min(max(0, page), pages - 1)
    return ordered[page * STEPS_PAGE : (page + 1) * STEPS_PAGE], pages


def form_fields(schema: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The inputs of a human task's form, from its step's input schema: one per property (a
    JSON text area for what is not a plain string, number, integer or boolean)."""
    if not schema or schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        return [{"name": "__json__", "kind": "json", "required": True, "label": "data (JSON)"}]
    required = set(schema.get("required") or ())
    fields = []
    for name, spec in schema["properties"].items():
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("type") if spec.get("type") in ("string", "number", "integer", "boolean") else "json"
        fields.append(
            {
                "name": name,
                "kind": kind,
                "required": name in required,
                "label": spec.get("title") or name,
                "enum": spec.get("enum") if isinstance(spec.get("enum"), list) else None,
                "description": spec.get("description") or "",
            }
        )
    return sorted(fields, key=lambda spec: not spec["required"])  # (the required first)


def form_data(fields: list[dict[str, Any]], form: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The task's data from a posted form, or the problem with it."""
    if fields and fields[0]["name"] == "__json__":
        try:
            whole = form_json(form.get("__json__") or "null")
        except ValueError as exc:
            return {}, str(exc)
        if not isinstance(whole, dict):
            return {}, "the data must be a JSON object"
        return whole, None
    data: dict[str, Any] = {}
    for spec in fields:
        raw = form.get(spec["name"], "")
        if spec["kind"] == "boolean":
            data[spec["name"]] = raw in ("on", "true", "1")
            continue
        if raw == "":
            continue  # (absent: the schema says whether it may be)
        try:
            if spec["kind"] == "integer":
                data[spec["name"]] = int(raw)
            elif spec["kind"] == "number":
                data[spec["name"]] = float(raw)
            elif spec["kind"] == "json":
                data[spec["name"]] = form_json(raw, MAX_DEPTH - 1)
            else:
                data[spec["name"]] = raw
        except ValueError:
            return {}, f"{spec['label']}: not a valid {spec['kind']}"
    return data, None


def form_json(text: str, depth: int = MAX_DEPTH) -> Any:
    """A form field's JSON, nested at most ``depth`` levels (the engine stores no deeper, and a
    deeper text would exhaust the parser's recursion); ValueError saying why not."""
    if nested_deeper(text.encode("utf-8", "surrogatepass"), depth):
        raise ValueError(f"the JSON is nested more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg}") from None
    except RecursionError:  # (the check above keeps it from happening)
        raise ValueError(f"the JSON is nested more than {MAX_DEPTH} levels deep") from None
