"""Workflow definitions: what a workflow is, as immutable pydantic models.

Field-level rules live here; rules that need the whole document (unknown names, cycles,
expressions, schemas) live in :mod:`workflow_engine.definitions.validation`, which is the only
way a definition is loaded or registered.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any

import semver
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from workflow_engine.core import planner
from workflow_engine.core.expressions import ITEM_NAMES, Expression, compile_expression
from workflow_engine.core.graph import Edge, Graph
from workflow_engine.core.limits import Rate, Strategy
from workflow_engine.core.mapping import PERCENT
from workflow_engine.core.retry import RetryPolicy
from workflow_engine.core.secrets import SecretPaths, schema_secrets
from workflow_engine.definitions.cases import CaseDefinition
from workflow_engine.errors import ExpressionError

# whole names: \Z, not $, which would let "name\n" by
WORKFLOW_NAME = r"^[a-z0-9][a-z0-9_-]{0,99}\Z"
STEP_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}\Z"
AGENT_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}\Z"
QUEUE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z"
# a step's `queue: X` is the broker queue <prefix>.X: these two are the engine's own
# (<prefix>.coordinator, <prefix>.steps) whatever the prefix; see definitions/queues.py for the rest
RESERVED_QUEUES = ("coordinator", "steps")
DEFAULT_VERSION = "1.0.0"
MAX_TIMEOUT = 7 * 24 * 3600.0


def _named(pattern: str, rule: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid name: {rule}")
        return value

    return AfterValidator(check)


WorkflowName = Annotated[
    str, _named(WORKFLOW_NAME, "lowercase letters, digits, '_' and '-', starting with a letter or digit")
]
StepName = Annotated[str, _named(STEP_NAME, "letters, digits, '_' and '-', at most 100")]
AgentName = Annotated[str, _named(AGENT_NAME, "letters, digits and '_.:-', at most 200")]
TaskName = Annotated[str, _named(AGENT_NAME, "a Celery task's name: letters, digits and '_.:-', at most 200")]


def _unreserved(queue: str) -> str:
    if queue in RESERVED_QUEUES:
        raise ValueError(
            f"queue {queue!r} is reserved for the engine's own messages: choose another name "
            f"(reserved: {', '.join(RESERVED_QUEUES)})"
        )
    return queue


QueueName = Annotated[
    str, _named(QUEUE_NAME, "letters, digits and '_.-', at most 100"), AfterValidator(_unreserved)
]


class StepType(StrEnum):
    AGENT = "agent"
    HUMAN = "human"
    TIMER = "timer"
    MAP = "map"  # the agent (or child workflow) once per item of a list known at run time
    WORKFLOW = "workflow"  # a child execution of another workflow
    WAIT = "wait"  # waits for a signal sent to the execution
    TASK = "task"  # the body of a Celery task, run by a worker that loaded its module


# the steps whose runs a worker claims and runs (their runs' step_type)
WORKER_STEPS = frozenset({StepType.AGENT, StepType.TASK})
# how a worker's agent registry names the Celery task a task step runs (see celery_tasks)
TASK_PREFIX = "task:"


# the fields of a step a worker runs (an agent, a map's agent, a Celery task)
_RUN_FIELDS = {"timeout", "retry", "queue", "config", "rate_limit", "rate_limit_key"}
# the fields each step type may have, besides those every step has
_OWN_FIELDS = {
    StepType.AGENT: {"agent", *_RUN_FIELDS},
    StepType.HUMAN: {"input_schema", "assignees"},
    StepType.TIMER: {"delay", "until"},
    StepType.MAP: {
        "items",
        "agent",
        "workflow",
        "version",
        "input",
        "max_concurrency",
        "tolerated_failures",
        *_RUN_FIELDS,
    },
    StepType.WORKFLOW: {"workflow", "version", "input"},
    StepType.WAIT: {"signal", "input_schema", "timeout"},
    StepType.TASK: {"task", "args", "kwargs", *_RUN_FIELDS},
}
_COMMON_FIELDS = {"name", "type", "description", "required", "config"}


KEY_NAMES = frozenset({"input", "metadata"})  # what a concurrency key may read


def _expression(source: str | None, names: frozenset[str]) -> str | None:
    if source is not None:
        try:
            compile_expression(source, names)
        except ExpressionError as exc:
            raise ValueError(str(exc)) from None
    return source


class StepDefinition(BaseModel):
    """One step: an agent run by a worker, a human task, a timer, a map over a list, a child
    workflow, or a wait for a signal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StepName
    type: StepType = StepType.AGENT
    agent: AgentName | None = None
    description: str = ""
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT)
    retry: RetryPolicy = RetryPolicy()
    required: bool = True
    queue: QueueName | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    input_schema: dict[str, Any] | None = None
    assignees: tuple[str, ...] = ()
    delay: float | None = Field(default=None, ge=0, le=366 * 24 * 3600.0)
    until: str | None = Field(default=None, min_length=1)
    # map: the expression giving the list, and what runs per item (agent or workflow)
    items: str | None = Field(default=None, min_length=1)
    workflow: WorkflowName | None = None  # map or workflow: the child workflow
    version: str | None = None  # its version (None: the latest when the child starts)
    # map or workflow: the input, each value an expression (a map's may use item and index)
    input: dict[str, str] | None = None
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    tolerated_failures: int | str = 0
    signal: StepName | None = None  # wait: the signal it waits for (None: the step's name)
    # agent or map: how often its agent may start across the fleet ("100/m"), per key value
    rate_limit: str | None = None
    rate_limit_key: str | None = Field(default=None, min_length=1)
    # task: the Celery task whose body runs, and its arguments, each an expression
    task: TaskName | None = None
    args: tuple[str, ...] | None = None
    kwargs: dict[str, str] | None = None

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            Rate.parse(value)
        return value

    @field_validator("rate_limit_key")
    @classmethod
    def _rate_key(cls, value: str | None) -> str | None:
        return _expression(value, KEY_NAMES | ITEM_NAMES)

    @cached_property
    def arguments(self) -> tuple[tuple[str, str | None, Expression], ...]:
        """A task step's arguments, compiled once: (where, keyword or None, expression), the
        positional ones first."""
        positional = [(f"args[{i}]", None, compile_expression(s)) for i, s in enumerate(self.args or ())]
        keywords = [(f"kwargs.{k}", k, compile_expression(s)) for k, s in (self.kwargs or {}).items()]
        return (*positional, *keywords)

    @cached_property
    def served_as(self) -> str | None:
        """The name a worker's agent registry serves this step under: its agent, or for a task
        step ``task:`` and the Celery task's name (None: no worker runs it)."""
        return self.agent or (TASK_PREFIX + self.task if self.task else None)

    @property
    def rate(self) -> Rate | None:
        return Rate.parse(self.rate_limit) if self.rate_limit is not None else None

    @field_validator("tolerated_failures")
    @classmethod
    def _tolerance(cls, value: int | str) -> int | str:
        if isinstance(value, bool) or (isinstance(value, int) and value < 0):
            raise ValueError("must be a count of items (0 or more) or a percentage such as '10%'")
        if isinstance(value, str):
            match = PERCENT.match(value)
            if match is None or float(match.group(1)) > 100:
                raise ValueError(f"{value!r} is not a percentage from '0%' to '100%'")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _child_version(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            try:
                parse_version(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH)") from None
        return value

    @property
    def waits_for(self) -> str | None:
        """The signal a wait step takes (None for any other step)."""
        return (self.signal or self.name) if self.type is StepType.WAIT else None

    @model_validator(mode="after")
    def _fields_fit_type(self) -> StepDefinition:
        given = self.model_fields_set
        if self.type is StepType.AGENT and not self.agent:
            raise ValueError("an agent step needs 'agent'")
        if self.type is StepType.TIMER and (self.delay is None) == (self.until is None):
            raise ValueError("a timer step needs exactly one of 'delay' or 'until'")
        if self.type is StepType.MAP:
            if not self.items:
                raise ValueError("a map step needs 'items', an expression that gives a list")
            if (self.agent is None) == (self.workflow is None):
                raise ValueError("a map step needs exactly one of 'agent' or 'workflow'")
        if self.type is StepType.TASK and not self.task:
            raise ValueError("a task step needs 'task', the name of a Celery task")
        if self.type is StepType.WORKFLOW and not self.workflow:
            raise ValueError("a workflow step needs 'workflow', the name of the child workflow")
        misplaced = given - _OWN_FIELDS[self.type] - _COMMON_FIELDS
        if self.workflow is not None:  # a child workflow has its own agents, timeouts and retries
            misplaced |= given & _RUN_FIELDS
        if "rate_limit_key" in given and self.rate_limit is None:
            raise ValueError("rate_limit_key needs rate_limit")
        if "version" in given and self.workflow is None:
            misplaced.add("version")
        if misplaced:
            fields = ", ".join(sorted(misplaced))
            raise ValueError(f"{fields} not allowed on a {self.type.value} step")
        return self


class EdgeDefinition(BaseModel):
    """``source → target``, taken only when ``when`` (if any) is true."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(alias="from", min_length=1)
    target: str = Field(alias="to", min_length=1)
    when: str | None = Field(default=None, min_length=1)

    def label(self) -> str:
        return f"{self.source} → {self.target}"


def parse_version(version: str) -> semver.Version:
    """The semantic version of a definition; raises ``ValueError`` if it is not one."""
    return semver.Version.parse(version)


class ConcurrencyDefinition(BaseModel):
    """At most ``max_running`` executions of the workflow run at once, or of each value of
    ``key`` (an expression over ``input`` and ``metadata``); ``strategy`` says what one more does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str | None = Field(default=None, min_length=1)
    max_running: int = Field(ge=1, le=100_000)
    strategy: Strategy = Strategy.QUEUE

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return _expression(value, KEY_NAMES)


class WorkflowHeader(BaseModel):
    """The fields of a definition besides its steps and edges."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: WorkflowName
    version: str = DEFAULT_VERSION
    description: str = ""
    input_schema: dict[str, Any] | None = None
    concurrency: ConcurrencyDefinition | None = None
    # paths of secret values (input.NAME, steps.STEP.NAME): sealed at rest, "***" in every view
    secrets: tuple[str, ...] = Field(default=(), max_length=100)
    # its own test cases (see workflow_engine.testing)
    tests: tuple[CaseDefinition, ...] = Field(default=(), max_length=1000)

    @field_validator("version", mode="before")
    @classmethod
    def _semantic_version(cls, value: Any) -> Any:
        text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        if isinstance(text, str):
            try:
                parse_version(text)
            except ValueError:
                raise ValueError(
                    f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0)"
                ) from None
        return text


class WorkflowDefinition(WorkflowHeader):
    """A versioned DAG of steps. Without ``edges`` the steps run in the order listed."""

    steps: tuple[StepDefinition, ...] = Field(min_length=1)
    edges: tuple[EdgeDefinition, ...] | None = None

    @cached_property
    def flow(self) -> tuple[EdgeDefinition, ...]:
        """The edges in effect: the declared ones, or a chain in the order the steps are listed."""
        if self.edges is not None:
            return self.edges
        return tuple(
            EdgeDefinition(source=a.name, target=b.name)
            for a, b in zip(self.steps, self.steps[1:], strict=False)
        )

    @cached_property
    def graph(self) -> Graph:
        """The DAG compiled for planning, conditions compiled once."""
        edges = [Edge(e.source, e.target, compile_expression(e.when) if e.when else None) for e in self.flow]
        return Graph([s.name for s in self.steps], edges)

    @cached_property
    def secret_paths(self) -> SecretPaths:
        """What is secret: the ``secrets`` paths, the input's ``writeOnly`` fields, and those of
        the forms of its human and wait steps (their output is what a person or signal gives)."""
        given = (StepType.HUMAN, StepType.WAIT)
        forms = [schema_secrets(s.input_schema, f"steps.{s.name}") for s in self.steps if s.type in given]
        return SecretPaths.of(
            [*self.secrets, *schema_secrets(self.input_schema), *(path for form in forms for path in form)]
        )

    @cached_property
    def steps_by_name(self) -> dict[str, StepDefinition]:
        return {step.name: step for step in self.steps}

    def step(self, name: str) -> StepDefinition:
        return self.steps_by_name[name]

    @cached_property
    def placement(self) -> dict[str, tuple[dict[str, int] | None, bool]]:
        """Of each step, what follows from its place in the graph: the joins a success of it
        only counts toward (:func:`~workflow_engine.core.planner.arrival_joins`), and whether
        a step it follows fans out to others too (its siblings may be carried)."""
        graph = self.graph
        return {name: (planner.arrival_joins(graph, name), graph.has_siblings(name)) for name in graph.steps}

    def listening(self, signal: str) -> tuple[StepDefinition, ...]:
        """The wait steps that take the signal ``signal``."""
        return tuple(step for step in self.steps if step.waits_for == signal)

    @property
    def children(self) -> frozenset[tuple[str, str | None]]:
        """The child workflows its steps start: (name, version or None for the latest)."""
        return frozenset((step.workflow, step.version) for step in self.steps if step.workflow)

    @property
    def agents(self) -> frozenset[str]:
        """What workers must serve for it: its agents, and its Celery tasks as ``task:<name>``."""
        return frozenset(name for step in self.steps if (name := step.served_as))

    @property
    def semver(self) -> semver.Version:
        return parse_version(self.version)

    def document(self) -> dict[str, Any]:
        """The canonical JSON document of this definition, as stored."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {
            "name": self.name,
            "version": self.version,
        }
