"""Whole-document validation: every problem at once, each with where it is.

:func:`validate_document` is the only way a raw document becomes a
:class:`~workflow_engine.definitions.model.WorkflowDefinition`. It checks the fields of every
step and edge, duplicate names, edges to unknown steps, cycles (naming one), steps that no edge
reaches, conditions (syntax, safety, and that they only read steps that run before them), JSON
Schemas, the semantic version and, when a catalogue is given, unknown agents.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import jsonschema
import pydantic

from workflow_engine.core.expressions import ITEM_NAMES, ROOT_NAMES, compile_expression
from workflow_engine.core.graph import Edge, Graph
from workflow_engine.core.payloads import MAX_DEPTH, payload_problem
from workflow_engine.core.secrets import path_problem
from workflow_engine.definitions.agents import unknown
from workflow_engine.definitions.cases import case_problems
from workflow_engine.definitions.model import (
    EdgeDefinition,
    StepDefinition,
    StepType,
    WorkflowDefinition,
    WorkflowHeader,
)
from workflow_engine.definitions.schemas import MAX_SCHEMA_KEYWORDS, schema_problem, schema_size
from workflow_engine.errors import DefinitionError, ExpressionError, Problem

TOP_LEVEL = (
    "name",
    "version",
    "description",
    "input_schema",
    "concurrency",
    "secrets",
    "tests",
    "steps",
    "edges",
)
SEED_STEP_FIELDS = ("timeout_minutes", "retry_on_failure")

# values a definition may hold in all, YAML anchors counted each time they are used (a 10,000-step
# chain holds about 40,000)
MAX_DEFINITION_VALUES = 200_000


def _pydantic_problems(prefix: str, error: pydantic.ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        location = f"{prefix}.{loc}" if prefix and loc else (loc or prefix)
        problems.append(Problem(location, message))
    return problems


def _step_location(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return f"steps[{index}] {name!r}" if isinstance(name, str) else f"steps[{index}]"


def _edge_location(index: int, raw: Any) -> str:
    if isinstance(raw, Mapping) and isinstance(raw.get("from"), str) and isinstance(raw.get("to"), str):
        return f"edges[{index}] {raw['from']} → {raw['to']}"
    return f"edges[{index}]"


def normalise_seed_step(raw: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[Problem]]:
    """The document-generation format (``timeout_minutes``, ``retry_on_failure``) in our terms."""
    step = dict(raw)
    problems: list[Problem] = []
    if "timeout_minutes" in step:
        minutes = step.pop("timeout_minutes")
        if "timeout" in step:
            problems.append(Problem(where, "give either 'timeout' or 'timeout_minutes', not both"))
        elif isinstance(minutes, (int, float)) and not isinstance(minutes, bool) and minutes > 0:
            step["timeout"] = float(minutes) * 60
        else:
            problems.append(Problem(f"{where}.timeout_minutes", "must be a positive number"))
    if "retry_on_failure" in step:
        retry_on_failure = step.pop("retry_on_failure")
        if "retry" in step:
            problems.append(Problem(where, "give either 'retry' or 'retry_on_failure', not both"))
        elif not isinstance(retry_on_failure, bool):
            problems.append(Problem(f"{where}.retry_on_failure", "must be true or false"))
        elif not retry_on_failure:
            step["retry"] = {"max_attempts": 1}
    return step, problems


def _check_schema(schema: Any, where: str) -> list[Problem]:
    if schema is None:
        return []
    if not isinstance(schema, Mapping):
        return [Problem(where, "must be a JSON Schema object")]
    unusable = schema_problem(schema)  # (first: its $schema picks the draft it is checked against)
    if unusable is not None:
        return [Problem(where, unusable)]
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.path)
        return [Problem(where, f"invalid JSON Schema{f' at {path}' if path else ''}: {exc.message}")]
    return []


def _case_problems(header: WorkflowHeader, steps: list[StepDefinition]) -> list[Problem]:
    return case_problems(
        header.tests,
        {step.name: step.type.value for step in steps},
        {step.agent for step in steps if step.agent},
        {name for step in steps if (name := step.waits_for) is not None},
        starts_children=any(step.workflow is not None for step in steps),
    )


class _Validator:
    def __init__(self, raw: Any, known_agents: Collection[str] | None, stored: bool = False) -> None:
        self.raw = raw
        self.known_agents = known_agents
        self.stored = stored
        self.problems: list[Problem] = []
        self.bad_conditions: set[tuple[str, str]] = set()
        self.schema_values = 0  # of all its schemas (each is checked against the meta-schema)

    def schema(self, schema: Any, where: str) -> None:
        """Check a schema, unless the definition's schemas are too large in all already (checking
        one against the meta-schema costs CPU in proportion to its size). A stored version's
        schemas are not checked again: every check of data applies today's rules to them (see
        :func:`~workflow_engine.definitions.schemas.check_data`), and its executions go on."""
        if self.stored:
            return
        if isinstance(schema, Mapping):
            before = self.schema_values
            self.schema_values += schema_size(schema)
            if self.schema_values > MAX_SCHEMA_KEYWORDS:
                if before <= MAX_SCHEMA_KEYWORDS:
                    self.add(
                        where,
                        f"the definition's schemas hold more than {MAX_SCHEMA_KEYWORDS} keywords "
                        "and values in all",
                    )
                return
        self.problems.extend(_check_schema(schema, where))

    def add(self, location: str, message: str) -> None:
        self.problems.append(Problem(location, message))

    def run(self) -> WorkflowDefinition | None:
        if not isinstance(self.raw, Mapping):
            self.add("document", "must be a mapping with name, version and steps")
            return None
        raw = self.raw
        for key in raw:
            if key not in TOP_LEVEL:
                self.add(str(key), f"unknown field (allowed: {', '.join(TOP_LEVEL)})")
        header = self._header(raw)
        steps, declared = self._steps(raw.get("steps"))
        before = len(self.problems)
        edges = self._edges(raw.get("edges"), set(declared))
        if header is not None and declared:
            for index, path in enumerate(header.secrets):
                problem = path_problem(path, declared)
                if problem is not None:
                    self.add(f"secrets[{index}]", problem)
        if declared and edges is not False:
            edges_sound = len(self.problems) - len(self.bad_conditions) == before
            self._graph(declared, steps, edges if isinstance(edges, tuple) else None, edges_sound)
        if header is not None and header.tests and len(steps) == len(declared):
            self.problems.extend(_case_problems(header, steps))
        if self.problems or header is None:
            return None
        try:
            return WorkflowDefinition(
                **header.model_dump(exclude_unset=True),
                steps=tuple(steps),
                edges=edges if isinstance(edges, tuple) else None,
            )
        except pydantic.ValidationError as exc:  # pragma: no cover - the checks above cover it
            self.problems.extend(_pydantic_problems("document", exc))
            return None

    def _header(self, raw: Mapping[str, Any]) -> WorkflowHeader | None:
        header_fields = ("name", "version", "description", "input_schema", "concurrency", "secrets", "tests")
        fields = {key: raw[key] for key in header_fields if key in raw}
        if fields.get("description") is None:
            fields.pop("description", None)
        try:
            header = WorkflowHeader.model_validate(fields)
        except pydantic.ValidationError as exc:
            self.problems.extend(_pydantic_problems("", exc))
            return None
        self.schema(header.input_schema, "input_schema")
        return header

    def _steps(self, raw_steps: Any) -> tuple[list[StepDefinition], dict[str, int]]:
        """The valid steps, and every step name declared (valid or not) with its index."""
        if raw_steps is None:
            self.add("steps", "required: a list of at least one step")
            return [], {}
        if not isinstance(raw_steps, list) or not raw_steps:
            self.add("steps", "must be a list of at least one step")
            return [], {}
        steps: list[StepDefinition] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(raw_steps):
            where = _step_location(index, raw)
            if not isinstance(raw, Mapping):
                self.add(where, "must be a mapping")
                continue
            normalised, problems = normalise_seed_step(raw, where)
            self.problems.extend(problems)
            name = normalised.get("name")
            if isinstance(name, str):
                if name in seen:
                    self.add(where, f"duplicate step name {name!r} (first at steps[{seen[name]}])")
                else:
                    seen[name] = index
            try:
                step = StepDefinition.model_validate(normalised)
            except pydantic.ValidationError as exc:
                self.problems.extend(_pydantic_problems(where, exc))
                continue
            self.schema(step.input_schema, f"{where}.input_schema")
            served = step.served_as
            if self.known_agents is not None and served and served not in self.known_agents:
                self.problems.append(unknown(where, served, self.known_agents))
            for field, source, names in step_expressions(step):
                try:
                    compile_expression(source, names)
                except ExpressionError as exc:
                    self.add(f"{where}.{field}", exc.message)
            if problems:
                continue
            if seen.get(step.name) == index:
                steps.append(step)
        return steps, seen

    def _edges(self, raw_edges: Any, names: set[str]) -> tuple[EdgeDefinition, ...] | bool | None:
        """The valid edges; ``None`` when none are declared; ``False`` when the list is unusable."""
        if raw_edges is None:
            return None
        if not isinstance(raw_edges, list):
            self.add("edges", "must be a list of {from, to, when?}")
            return False
        edges: list[EdgeDefinition] = []
        seen: dict[tuple[str, str], int] = {}
        for index, raw in enumerate(raw_edges):
            where = _edge_location(index, raw)
            try:
                edge = EdgeDefinition.model_validate(raw)
            except pydantic.ValidationError as exc:
                self.problems.extend(_pydantic_problems(where, exc))
                continue
            unknown = [n for n in (edge.source, edge.target) if n not in names]
            for name in dict.fromkeys(unknown):
                self.add(where, f"unknown step {name!r}")
            key = (edge.source, edge.target)
            if key in seen:
                self.add(where, f"duplicate edge (first at edges[{seen[key]}])")
                continue
            seen[key] = index
            if edge.when is not None:
                try:
                    compile_expression(edge.when)
                except ExpressionError as exc:
                    self.add(f"{where}.when", exc.message)
                    self.bad_conditions.add(key)
            if not unknown:
                edges.append(edge)
        return tuple(edges)

    def _graph(
        self,
        declared: dict[str, int],
        steps: list[StepDefinition],
        edges: tuple[EdgeDefinition, ...] | None,
        edges_sound: bool,
    ) -> None:
        names = list(declared)
        flow: Iterable[EdgeDefinition] = (
            edges
            if edges is not None
            else (EdgeDefinition(source=a, target=b) for a, b in itertools.pairwise(names))
        )
        graph = Graph(names, [Edge(e.source, e.target) for e in flow])
        cycle = graph.find_cycle()
        if cycle is not None:
            self.add("edges", "cycle: " + " → ".join(cycle))
            return
        if edges is not None and edges_sound and len(names) > 1:
            for name in names:
                if not graph.incoming[name] and not graph.outgoing[name]:
                    self.add(
                        f"steps[{declared[name]}] {name!r}",
                        "unreachable: no edge leads to or from this step although the "
                        "workflow declares edges",
                    )
        self._conditions(declared, steps, edges or (), graph)

    def _conditions(
        self,
        declared: dict[str, int],
        steps: list[StepDefinition],
        edges: tuple[EdgeDefinition, ...],
        graph: Graph,
    ) -> None:
        """Conditions may only read steps that have resolved when they are evaluated."""
        for index, edge in enumerate(edges):
            if edge.when is None or (edge.source, edge.target) in self.bad_conditions:
                continue
            expression = compile_expression(edge.when)
            where = f"edges[{index}] {edge.label()}.when"
            upstream = graph.ancestors(edge.source)
            for ref in sorted(expression.step_refs - upstream):
                if ref in graph.incoming:
                    self.add(where, f"reads steps.{ref}, which does not run before {edge.source!r}")
                else:
                    self.add(where, f"reads steps.{ref}, which is not a step of this workflow")
            if expression.reads_data:
                continue
            try:
                value = expression.evaluate({})
            except ExpressionError as exc:
                self.add(where, exc.message)
                continue
            if not value and graph.in_degree(edge.target) == 1:
                self.add(where, f"is always false: step {edge.target!r} could never run")
        for step in steps:
            expressions = step_expressions(step)
            if not expressions:
                continue  # (ancestors cost a walk of the DAG: only for steps that read data)
            upstream = graph.ancestors(step.name) - {step.name}
            for field, source, names in expressions:
                try:
                    expression = compile_expression(source, names)
                except ExpressionError:
                    continue  # reported with the step
                for ref in sorted(expression.step_refs - upstream):
                    self.add(
                        f"steps[{declared[step.name]}] {step.name!r}.{field}",
                        f"reads steps.{ref}, which does not run before {step.name!r}",
                    )


def step_expressions(step: StepDefinition) -> list[tuple[str, str, frozenset[str]]]:
    """A step's expressions: (field, source, the names it may use)."""
    found = []
    if step.until is not None:
        found.append(("until", step.until, ROOT_NAMES))
    if step.items is not None:
        found.append(("items", step.items, ROOT_NAMES))
    names = ROOT_NAMES | ITEM_NAMES if step.type is StepType.MAP else ROOT_NAMES
    for key, source in (step.input or {}).items():
        found.append((f"input.{key}", source, names))
    for position, source in enumerate(step.args or ()):
        found.append((f"args[{position}]", source, ROOT_NAMES))
    for key, source in (step.kwargs or {}).items():
        found.append((f"kwargs.{key}", source, ROOT_NAMES))
    return found


def unknown_agents(definition: WorkflowDefinition, known: Collection[str]) -> list[Problem]:
    """A problem for each step whose agent (or Celery task) is not in ``known``."""
    return [
        unknown(f"steps[{index}] {step.name!r}", step.served_as, known)
        for index, step in enumerate(definition.steps)
        if step.served_as and step.served_as not in known
    ]


def unknown_children(
    definition: WorkflowDefinition, registered: Callable[[str, str | None], bool]
) -> list[Problem]:
    """A problem for each step whose child workflow (or version of it) ``registered`` does not
    know. A workflow may start itself (nesting is bounded at run time)."""
    problems = []
    for index, step in enumerate(definition.steps):
        if step.workflow is None or (step.workflow == definition.name and step.version is None):
            continue
        if step.workflow == definition.name and step.version == definition.version:
            continue
        if not registered(step.workflow, step.version):
            what = f"workflow {step.workflow!r}" + (f" version {step.version}" if step.version else "")
            problems.append(
                Problem(f"steps[{index}] {step.name!r}.workflow", f"unknown {what}: register it first")
            )
    return problems


def validate_document(
    raw: Any, known_agents: Collection[str] | None = None, *, stored: bool = False
) -> tuple[WorkflowDefinition | None, list[Problem]]:
    """The definition and no problems, or None and every problem found. ``stored``: a version
    registered earlier, read back (its schemas are held to today's rules when data is checked
    against them, not when it is read: a rule made since does not stop its executions)."""
    unstorable = payload_problem(raw, max_depth=MAX_DEPTH, max_nodes=MAX_DEFINITION_VALUES)
    if unstorable is not None:  # nothing else is checked: walking such a document is the risk
        return None, [unstorable]
    validator = _Validator(raw, known_agents, stored)
    definition = validator.run()
    return definition, validator.problems


def load_document(
    raw: Any, source: str | None = None, known_agents: Collection[str] | None = None, *, stored: bool = False
) -> WorkflowDefinition:
    """The definition, or :class:`DefinitionError` listing every problem (``stored``: see
    :func:`validate_document`)."""
    definition, problems = validate_document(raw, known_agents, stored=stored)
    if definition is None or problems:
        raise DefinitionError(problems, source)
    return definition
