"""Workflow definitions: the model, loading, validation and the Python builder."""

from workflow_engine.definitions.builder import WorkflowBuilder
from workflow_engine.definitions.loader import check_file, load, load_file
from workflow_engine.definitions.model import (
    EdgeDefinition,
    StepDefinition,
    StepType,
    WorkflowDefinition,
)
from workflow_engine.definitions.validation import load_document, validate_document

__all__ = [
    "EdgeDefinition",
    "StepDefinition",
    "StepType",
    "WorkflowBuilder",
    "WorkflowDefinition",
    "check_file",
    "load",
    "load_document",
    "load_file",
    "validate_document",
]
