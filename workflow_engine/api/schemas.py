"""Request and response bodies of the REST API. An execution, an attempt and a transition are
the documents :mod:`workflow_engine.views` makes (the command line prints the same), and every
time in a response is written as they write it: ISO 8601 in UTC with a ``Z``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from workflow_engine.core.states import ExecutionStatus
from workflow_engine.store.records import EventRecord, WorkflowRecord
from workflow_engine.views import ExecutionView, event_json, timestamp

# a time in a response: the views' one format (a request's times are read as ISO 8601)
Timestamp = Annotated[
    datetime,
    PlainSerializer(timestamp, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(Strict):
    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class WorkflowVersionOut(BaseModel):
    name: str
    version: str
    description: str
    steps: int
    created_at: Timestamp
    definition: dict[str, Any] | None = None

    @classmethod
    def of(cls, record: WorkflowRecord, with_definition: bool = False) -> WorkflowVersionOut:
        return cls(
            name=record.name,
            version=record.version,
            description=record.description,
            steps=len(record.document["steps"]),
            created_at=record.created_at,
            definition=record.document if with_definition else None,
        )


class WorkflowOut(BaseModel):
    name: str
    description: str
    latest_version: str
    versions: list[str]
    definition: dict[str, Any] | None = None


Mode = Literal["auto", "step"]
Key = Field(default=None, min_length=1, max_length=255)


class ExecuteRequest(Strict):
    """Start an execution of the workflow named in the path."""

    input_data: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: str | None = Field(default=None, max_length=64)
    idempotency_key: str | None = Key
    mode: Mode = "auto"


class StartRequest(ExecuteRequest):
    workflow: str = Field(min_length=1, max_length=100)


class Started(BaseModel):
    execution_id: str
    status: str


class StepOut(BaseModel):
    name: str
    type: str
    status: str
    attempts: int
    duration_ms: int | None
    error: dict[str, Any] | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    reason: str | None = Field(default=None, description="why it is not running, as the monitor says")
    items: dict[str, int] | None = Field(
        default=None, description="a map step's items: total, done, failed, running, pending"
    )


class EventOut(BaseModel):
    id: int
    step_name: str | None
    attempt: int | None
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None
    details: dict[str, Any] | None
    created_at: Timestamp

    @classmethod
    def of(cls, event: EventRecord) -> EventOut:
        return cls.model_validate(event_json(event))


class ChildOut(BaseModel):
    execution_id: str
    workflow: str
    version: str
    status: str
    step: str
    index: int | None


class ExecutionOut(BaseModel):
    """The execution document the command line's ``--json`` prints too; ``steps``,
    ``current_steps`` and ``children`` are null when the steps were not asked for."""

    execution_id: str
    workflow: str
    version: str
    status: str
    mode: str
    percent_complete: float
    current_steps: list[str] | None = None
    reason: str | None = Field(
        default=None,
        description="why it is not running (or not all of it), as the monitor says: "
        "'waiting for a concurrency slot', \"step 'b' queued on wfe.steps, which no live worker consumes\"",
    )
    input_data: dict[str, Any]
    metadata: dict[str, Any]
    output: dict[str, Any] | None
    error: dict[str, Any] | None
    retries: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_ms: int | None
    steps: list[StepOut] | None = None
    events: list[EventOut] | None = None
    parent_execution_id: str | None = None
    parent_step: str | None = None
    parent_index: int | None = None
    children: list[ChildOut] | None = None

    @classmethod
    def of(cls, view: ExecutionView, events: list[EventRecord] | None = None) -> ExecutionOut:
        document = view.to_json()
        if not view.steps:
            document.update(current_steps=None, steps=None, children=None)
        if events is not None:
            document["events"] = [event_json(event) for event in events]
        return cls.model_validate(document)


class ExecutionListOut(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ExecutionOut]


class LogOut(BaseModel):
    """One attempt: the document ``engine.logs`` and ``wfe logs --json`` give."""

    id: int
    step_name: str
    step_type: str
    agent: str | None
    attempt: int
    index: int | None = None  # a map step's item
    status: str
    superseded: bool
    input_data: Any
    output_data: Any
    error_type: str | None
    error_message: str | None
    error_code: str | None
    worker: str | None
    completed_by: str | None
    timestamp: Timestamp
    queued_at: Timestamp | None = None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_ms: int | None


class CancelRequest(Strict):
    reason: str | None = Field(default=None, max_length=1000)


class RetryRequest(Strict):
    from_step: str | None = Field(default=None, min_length=1, max_length=100)


class MigrateRequest(Strict):
    version: str = Field(min_length=1, max_length=100)


class CompleteRequest(Strict):
    data: dict[str, Any]


class SignalRequest(Strict):
    data: dict[str, Any] = Field(default_factory=dict)


class HumanTaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    execution_id: str
    workflow: str
    version: str
    step: str
    kind: Literal["human", "fix"]
    description: str
    assignees: list[str]
    input_schema: dict[str, Any] | None
    error: dict[str, Any] | None
    waiting_since: Timestamp | None


class ProblemOut(BaseModel):
    location: str
    message: str


class ErrorOut(BaseModel):
    detail: Any
    problems: list[ProblemOut] | None = None


class ScheduleRequest(Strict):
    """A new schedule: the options of ``wfe schedule create``."""

    name: str = Field(min_length=1, max_length=100)
    workflow: str = Field(min_length=1, max_length=100)
    version: str | None = Field(default=None, max_length=64)
    cron: str | None = Field(default=None, max_length=200)
    every: int | None = None
    timezone: str | None = Field(default=None, max_length=64)
    input: dict[str, Any] | None = None
    overlap: Literal["skip", "buffer_one", "allow_all", "cancel_other"] = "skip"
    catchup_window: int = 0


class ScheduledExecution(BaseModel):
    execution_id: str | None
    scheduled_at: str
    status: str | None


class ScheduleChange(BaseModel):
    action: str
    actor: str
    at: str
    details: Any = None


class ScheduleOut(BaseModel):
    name: str
    workflow: str
    version: str | None
    cron: str | None
    every: int | None
    timezone: str
    input: Any
    overlap: str
    catchup_window: int
    paused: bool
    next_fire_times: list[Timestamp]
    last_executions: list[ScheduledExecution]
    changes: list[ScheduleChange]
    created_at: Timestamp | None


class FiredOut(BaseModel):
    schedule: str
    scheduled_at: Timestamp
    action: str
    execution_id: str | None
    error: str | None


class BulkRequest(Strict):
    """The listing's filters (or explicit ids): every execution they match that the caller
    may control."""

    workflow: str | None = Field(default=None, max_length=100)
    status: ExecutionStatus | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    ids: list[str] | None = Field(default=None, max_length=10_000)
    dry_run: bool = False
    reason: str | None = Field(default=None, max_length=1000)


class BulkOut(BaseModel):
    matched: int
    changed: int
    refused: int
    would_change: int | None = None
    truncated: bool = False


class ErrorGroupOut(BaseModel):
    group: str
    workflow: str
    step: str
    error_type: str
    code: str | None
    message: str
    count: int
    first_seen: Timestamp | None
    last_seen: Timestamp | None
    execution_ids: list[str]


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: Timestamp
    username: str | None
    address: str
    route: str
    status: int


class CasesRequest(Strict):
    """Run the cases of a registered version (the latest when ``version`` is not given)."""

    workflow: str = Field(min_length=1, max_length=100)
    version: str | None = Field(default=None, min_length=1, max_length=64)


class CaseOut(BaseModel):
    case: str
    passed: bool
    status: str | None
    differences: list[str]
    path: list[str]
    seconds: float


class CasesRunOut(BaseModel):
    id: int
    workflow: str
    version: str
    passed: int
    failed: int
    seconds: float
    created_at: Timestamp
    cases: list[CaseOut]
