"""Every exception the engine raises, under one root.

    WorkflowEngineError
    ├── DefinitionError          a definition has problems (all of them, with locations)
    ├── InputError               data does not match a schema (execution input, human task data)
    ├── NotFound                 WorkflowNotFound, ExecutionNotFound, StepNotFound, ScheduleNotFound,
    │                            ErrorGroupNotFound, UserNotFound, SignalNotFound
    ├── Conflict                 NameTaken, DefinitionExists, InvalidTransition, InvalidOperation
    ├── AuthError                AuthenticationFailed (401), PermissionDenied (403), TooManyAttempts (429)
    ├── ExpressionError          a condition does not parse, is unsafe, or fails to evaluate
    ├── ConfigurationError       a setting or an agent module is unusable
    ├── StoreError               the database failed; ``transient`` says whether to retry
    ├── BrokerError              the broker did not take a message (unreachable, or refused it)
    └── StepError                raised by agents to say how a step failed
        ├── TransientError       retried with backoff (StepTimeout, connection errors)
        ├── ValidationError      not retried; the execution waits for a fix
        └── FatalError           not retried; the step fails

Exceptions that may cross a process boundary define ``__reduce__`` so they pickle with their
attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class WorkflowEngineError(Exception):
    """Root of every error raised by the engine."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a document, with where it is."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class DefinitionError(WorkflowEngineError):
    """A workflow definition is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        lines = "; ".join(str(p) for p in self.problems)
        super().__init__(f"invalid workflow definition{f' {source}' if source else ''}: {lines}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems, self.source))


class InputError(WorkflowEngineError):
    """Data does not satisfy a schema; nothing was changed."""

    def __init__(self, what: str, problems: Sequence[Problem]) -> None:
        self.what = what
        self.problems = list(problems)
        super().__init__(f"invalid {what}: " + "; ".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.problems))


class NotFound(WorkflowEngineError):
    """Something named does not exist (or is not visible to the caller)."""

    kind = "object"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"{self.kind} {key!r} not found")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.key,))


class WorkflowNotFound(NotFound):
    kind = "workflow"


class ExecutionNotFound(NotFound):
    kind = "execution"


class StepNotFound(NotFound):
    kind = "step"


class UserNotFound(NotFound):
    kind = "user"


class ScheduleNotFound(NotFound):
    kind = "schedule"


class TestRunNotFound(NotFound):
    __test__ = False  # (not a test class)
    kind = "test run"


class ErrorGroupNotFound(NotFound):
    kind = "error group"


class SignalNotFound(NotFound):
    """No step of the execution's workflow waits for the signal."""

    kind = "signal"

    def __init__(self, key: str, workflow: str = "") -> None:
        self.key, self.workflow = key, workflow
        WorkflowEngineError.__init__(self, f"no step of workflow {workflow!r} waits for signal {key!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.key, self.workflow))


class Conflict(WorkflowEngineError):
    """The request contradicts the current state."""


class NameTaken(Conflict):
    """A workflow name registered by another owner: only the owner of a name's first version
    may register more versions of it."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"the workflow name {name!r} belongs to another owner (a name belongs to whoever "
            "registered its first version); choose another name"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name,))


class DefinitionExists(Conflict):
    """(name, version) is registered already with a different body: versions are immutable."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        super().__init__(
            f"workflow {name} version {version} is already registered with a different "
            "definition; versions are immutable, register a new version"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.version))


class InvalidTransition(Conflict):
    """A state transition that the state machine does not allow."""

    def __init__(self, current: str, requested: str, subject: str = "execution") -> None:
        self.current = current
        self.requested = requested
        self.subject = subject
        super().__init__(f"{subject} cannot go from {current} to {requested}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.current, self.requested, self.subject))


class InvalidOperation(Conflict):
    """An operation that does not apply to the object in its current state."""


class AuthError(WorkflowEngineError):
    """Authentication or authorisation failed."""


class AuthenticationFailed(AuthError):
    """Credentials or token are missing, wrong, altered or expired."""


class PermissionDenied(AuthError):
    """The caller is known but its role does not allow this."""


class TooManyAttempts(AuthError):
    """Too many failed logins for a user or from an address, or too many logins at once: try
    again in ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.retry_after))


class ExpressionError(WorkflowEngineError):
    """A condition expression is malformed, unsafe, or failed while evaluating."""

    def __init__(self, message: str, expression: str = "") -> None:
        self.message = message
        self.expression = expression
        super().__init__(f"{message} in {expression!r}" if expression else message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.expression))


class ConfigurationError(WorkflowEngineError):
    """A setting, an agent module or a deployment file is unusable."""


class StoreError(WorkflowEngineError):
    """The database failed; ``transient`` errors are worth retrying, and ``unreachable`` ones
    (a transient kind) mean the server cannot be reached or is shutting down."""

    def __init__(self, message: str, transient: bool = False, unreachable: bool = False) -> None:
        self.transient = transient or unreachable
        self.unreachable = unreachable
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.transient, self.unreachable))


class BrokerError(WorkflowEngineError):
    """The broker did not take a message: it cannot be reached, or it refused it. What the
    database recorded stays; the reconciler publishes the steps again once the broker answers."""


class StepError(WorkflowEngineError):
    """Raised by an agent to say how its step failed."""

    error_type = "step_error"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        self.message = message
        self.code = code
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.code))


class TransientError(StepError):
    """A failure worth retrying: the step is attempted again after a backoff, or after
    ``retry_in`` seconds when given (a Celery task's ``self.retry(countdown=)``, a service's
    Retry-After)."""

    error_type = "transient"

    def __init__(self, message: str = "", code: str | None = None, retry_in: float | None = None) -> None:
        super().__init__(message, code)
        self.retry_in = retry_in

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.code, self.retry_in))


class StepTimeout(TransientError):
    """The step ran past its timeout."""

    error_type = "timeout"


class ValidationError(StepError):
    """The step's data is wrong: not retried; the execution waits for a fix."""

    error_type = "validation"


class FatalError(StepError):
    """A failure that retrying cannot fix: the step fails at once."""

    error_type = "fatal"
