"""Mocks for agents: what a case or a test gives instead of the agent's work."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from workflow_engine.agents import AgentContext
from workflow_engine.definitions.cases import error_mock
from workflow_engine.errors import FatalError, StepError, TransientError, ValidationError

ERRORS: dict[str, type[StepError]] = {
    "transient": TransientError,
    "validation": ValidationError,
    "fatal": FatalError,
}


def mocked(spec: Any) -> Callable[[AgentContext], Any]:
    """An agent for ``spec``: a function of the context (used as it is), an exception class or
    instance (raised), ``{"error": kind, "times"?, "output"?, "message"?}`` (the error of that
    kind, on every attempt or on the first ``times``, then ``output``), or else the output."""
    if isinstance(spec, type) and issubclass(spec, BaseException):
        error_class = spec

        def raises(ctx: AgentContext) -> Any:
            raise error_class(f"{ctx.step_name}: mocked {error_class.__name__}")

        return raises
    if isinstance(spec, BaseException):
        error = spec

        def raises_given(ctx: AgentContext) -> Any:
            raise error

        return raises_given
    if callable(spec):
        return spec  # type: ignore[no-any-return]
    failing = error_mock(spec)
    if failing is not None:
        return _failing(failing)

    def returns(ctx: AgentContext) -> Any:
        return copy.deepcopy(spec)

    return returns


def _failing(spec: dict[str, Any]) -> Callable[[AgentContext], Any]:
    kind = ERRORS[spec["error"]]
    times = spec.get("times")
    output = spec.get("output", {})
    message = spec.get("message")

    def fails(ctx: AgentContext) -> Any:
        if times is None or ctx.attempt <= times:
            raise kind(message or f"{ctx.step_name}: mocked {spec['error']} error (attempt {ctx.attempt})")
        return copy.deepcopy(output)

    return fails
