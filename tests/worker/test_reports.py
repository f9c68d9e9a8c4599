"""How an attempt shows in Flower: the state, summary and exception of each committed outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from workflow_engine.core.retry import FailureKind
from workflow_engine.decisions.outcomes import Claim, Failure, Success
from workflow_engine.definitions.model import StepDefinition
from workflow_engine.errors import TransientError
from workflow_engine.worker.reports import SUMMARY_CHARS, Attempted


def claim() -> Claim:
    now = datetime.now(UTC)
    step = StepDefinition(name="write", agent="writer")
    return Claim(1, "ex-1", "wf", "1.0.0", 1, step, 1, {}, {}, None, "w", 0, now, now)


def raised() -> TransientError:
    try:
        raise TransientError("rate limit", code="RATE_LIMIT")
    except TransientError as error:
        return error


@pytest.mark.parametrize(
    ("outcome", "result", "state"),
    [
        (Success({"words": 1800}, 5), "succeeded", "SUCCESS"),
        (Success({}, 5), "discarded", "SUCCESS"),
        (Failure(FailureKind.TRANSIENT, "transient", "rate limit", 5), "retrying", "RETRY"),
        (Failure(FailureKind.TRANSIENT, "transient", "rate limit", 5), "failed", "FAILURE"),  # exhausted
        (Failure(FailureKind.TRANSIENT, "timeout", "ran past its timeout", 5), "failed", "FAILURE"),
        (Failure(FailureKind.FATAL, "fatal", "broken", 5, "BROKEN"), "failed", "FAILURE"),
        (Failure(FailureKind.VALIDATION, "validation", "no title", 5), "waiting", "FAILURE"),
        (Failure(FailureKind.FATAL, "fatal", "late", 5), "discarded", "FAILURE"),
    ],
)
def test_each_outcome_has_the_state_an_operator_expects(outcome: Any, result: str, state: str) -> None:
    assert Attempted(claim(), outcome, result).state == state


def test_a_success_is_summarised_and_cut_short() -> None:
    assert Attempted(claim(), Success({"words": 1800}, 5), "succeeded").summary == '{"words": 1800}'
    long = Attempted(claim(), Success({"text": "x" * 1000}, 5), "succeeded").summary
    assert len(long) == SUMMARY_CHARS and long.endswith("…")


def test_a_failure_names_its_type_code_message_and_what_follows_with_the_agent_s_traceback() -> None:
    error = raised()
    failure = Failure(FailureKind.TRANSIENT, "transient", "rate limit", 5, "RATE_LIMIT", cause=error)
    attempted = Attempted(claim(), failure, "retrying")
    assert str(attempted.failure) == "transient [RATE_LIMIT]: rate limit (another attempt is scheduled)"
    assert attempted.failure.__cause__ is error
    assert "raise TransientError" in attempted.traceback and "in raised" in attempted.traceback
    bare = Attempted(claim(), Failure(FailureKind.FATAL, "unknown_agent", "not loaded", 0), "failed")
    assert "unknown_agent: not loaded (the step failed)" in bare.traceback
