"""Workflow Engine: a Celery-based distributed workflow orchestrator.

Importing this package has no side effect: no Celery app is built and no connection opened.
"""

from workflow_engine.agents import AgentContext, agent
from workflow_engine.definitions import (
    EdgeDefinition,
    StepDefinition,
    StepType,
    WorkflowBuilder,
    WorkflowDefinition,
    load,
)
from workflow_engine.engine import Engine
from workflow_engine.errors import (
    Conflict,
    DefinitionError,
    ExecutionNotFound,
    FatalError,
    InputError,
    InvalidTransition,
    NotFound,
    StepTimeout,
    TransientError,
    ValidationError,
    WorkflowEngineError,
    WorkflowNotFound,
)
from workflow_engine.settings import Settings
from workflow_engine.views import ExecutionView

__all__ = [  # noqa: RUF022 - grouped by use, as the comments say
    # running workflows
    "Engine",
    "ExecutionView",
    "Settings",
    # definitions
    "EdgeDefinition",
    "StepDefinition",
    "StepType",
    "WorkflowBuilder",
    "WorkflowDefinition",
    "load",
    # agents
    "AgentContext",
    "agent",
    # errors agents raise
    "FatalError",
    "StepTimeout",
    "TransientError",
    "ValidationError",
    # errors the engine raises
    "Conflict",
    "DefinitionError",
    "ExecutionNotFound",
    "InputError",
    "InvalidTransition",
    "NotFound",
    "WorkflowEngineError",
    "WorkflowNotFound",
]
