"""Retry policy as a value, and how a step's failure is classified: pure functions."""

from __future__ import annotations

import random
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workflow_engine.errors import StepError, TransientError, ValidationError


class RetryPolicy(BaseModel):
    """Exponential backoff: ``initial_delay * factor**(n-1)`` before attempt n+1, capped, jittered.

    The defaults wait 1 s, 2 s, 4 s... between attempts, three attempts in all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=100)
    initial_delay: float = Field(default=1.0, ge=0, le=86400)
    factor: float = Field(default=2.0, ge=1, le=10)
    max_delay: float = Field(default=60.0, ge=0, le=7 * 86400)
    jitter: float = Field(default=0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _cap_not_below_initial(self) -> RetryPolicy:
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must not be smaller than initial_delay")
        return self

    def base_delay(self, attempt: int) -> float:
        """Seconds to wait after attempt ``attempt`` (1-based) failed, before jitter."""
        exponent = max(attempt - 1, 0)
        # cap the exponent first so a large attempt number cannot overflow
        raw = self.initial_delay * self.factor ** min(exponent, 64)
        return float(min(raw, self.max_delay))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Jittered delay after attempt ``attempt``; stays within ±jitter of the base delay."""
        base = self.base_delay(attempt)
        if not self.jitter or not base:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))

    def allows_another(self, attempt: int) -> bool:
        return attempt < self.max_attempts


class FailureKind(StrEnum):
    TRANSIENT = "transient"
    VALIDATION = "validation"
    FATAL = "fatal"


# Client libraries raise connection failures and timeouts of their own that do not derive from
# Python's (redis-py, httpx, requests, kombu, ...); they are recognised by these class names
# anywhere in their hierarchy, so an agent need not wrap every client call in TransientError.
_TIMEOUT_NAMES = frozenset({"TimeoutError", "Timeout", "TimeoutException", "ConnectTimeout", "ReadTimeout"})
_CONNECTION_NAMES = frozenset({"ConnectionError", "NetworkError", "ConnectError"})


# some libraries file refusals that retrying cannot cure under their connection errors (redis-py's
# AuthenticationError, requests' SSLError and ProxyError)
_PERMANENT_MARKS = ("Auth", "SSL", "Certificate", "Proxy")


def _network_failure(error: BaseException) -> str | None:
    """``"timeout"`` or ``"connection"`` when ``error`` is one of those, else None."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionError):
        return "connection"
    names = {kind.__name__ for kind in type(error).__mro__}
    if any(mark in name for name in names for mark in _PERMANENT_MARKS):
        return None
    if names & _TIMEOUT_NAMES:
        return "timeout"
    if names & _CONNECTION_NAMES:
        return "connection"
    return None


def classify(error: BaseException) -> FailureKind:
    """How a step's exception is handled: retried, awaiting a fix, or failed at once."""
    if isinstance(error, TransientError) or _network_failure(error):
        return FailureKind.TRANSIENT
    if isinstance(error, ValidationError):
        return FailureKind.VALIDATION
    return FailureKind.FATAL


def error_type(error: BaseException) -> str:
    """The error type recorded for an attempt: ours by kind, anything else by class name."""
    if isinstance(error, StepError):
        return error.error_type
    return _network_failure(error) or type(error).__name__
