from __future__ import annotations

import random

import httpx
import pytest
import redis
from pydantic import ValidationError as PydanticValidationError

from workflow_engine.core.retry import FailureKind, RetryPolicy, classify, error_type
from workflow_engine.errors import FatalError, StepTimeout, TransientError, ValidationError


def test_default_backoff_doubles_from_one_second() -> None:
    policy = RetryPolicy(jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert policy.max_attempts == 3


def test_backoff_is_capped_by_max_delay_even_for_huge_attempt_numbers() -> None:
    policy = RetryPolicy(initial_delay=1, factor=10, max_delay=60, jitter=0)
    assert policy.delay(3) == 60.0
    assert policy.delay(10_000) == 60.0


def test_jitter_stays_within_its_fraction_of_the_base_delay() -> None:
    policy = RetryPolicy(initial_delay=2, jitter=0.1)
    rng = random.Random(7)
    delays = [policy.delay(1, rng) for _ in range(500)]
    assert min(delays) >= 1.8 and max(delays) <= 2.2
    assert len(set(delays)) > 100  # it is really jittered


def test_attempts_are_allowed_up_to_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.allows_another(n) for n in (1, 2, 3)] == [True, True, False]


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"initial_delay": -1}, {"factor": 0.5}, {"initial_delay": 10, "max_delay": 5}],
)
def test_nonsensical_policies_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(PydanticValidationError):
        RetryPolicy(**options)


@pytest.mark.parametrize(
    ("error", "kind", "recorded"),
    [
        (TransientError("busy"), FailureKind.TRANSIENT, "transient"),
        (StepTimeout("slow"), FailureKind.TRANSIENT, "timeout"),
        (ConnectionResetError("reset"), FailureKind.TRANSIENT, "connection"),
        (TimeoutError(), FailureKind.TRANSIENT, "timeout"),
        (ValidationError("bad data"), FailureKind.VALIDATION, "validation"),
        (FatalError("broken"), FailureKind.FATAL, "fatal"),
        (KeyError("x"), FailureKind.FATAL, "KeyError"),
        # client libraries' own network errors, which do not derive from Python's
        (redis.exceptions.ConnectionError("refused"), FailureKind.TRANSIENT, "connection"),
        (redis.exceptions.TimeoutError("slow"), FailureKind.TRANSIENT, "timeout"),
        (httpx.ConnectError("refused"), FailureKind.TRANSIENT, "connection"),
        (httpx.ReadTimeout("slow"), FailureKind.TRANSIENT, "timeout"),
        (httpx.UnsupportedProtocol("ftp"), FailureKind.FATAL, "UnsupportedProtocol"),
        (redis.exceptions.AuthenticationError("wrong password"), FailureKind.FATAL, "AuthenticationError"),
    ],
)
def test_errors_are_classified_by_kind(error: BaseException, kind: FailureKind, recorded: str) -> None:
    assert classify(error) is kind
    assert error_type(error) == recorded
