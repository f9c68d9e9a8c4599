"""How a step attempt shows in Flower once its outcome is committed.

The database is the source of truth; Celery's task state is a report of it for operators who
watch tasks. A step task ends in the state that matches its attempt:

- ``SUCCESS``: the agent succeeded; the task's result is a short summary of the output (an
  attempt whose result no longer counted, because its execution was cancelled or reset
  meanwhile, succeeds with the summary "discarded").
- ``RETRY``: it failed transiently and the engine has scheduled another attempt (its own retry,
  a new message: Celery's retry machinery is not used, and the message is acknowledged as
  always).
- ``FAILURE``: it failed for good (a fatal error, retries exhausted, a timeout, a validation
  error that makes the execution wait for a fix), with the error type, code and message, and
  the agent's traceback.

The task body reports by returning the summary or raising :class:`StepAttemptFailed`
(wrapped in Celery's ``Retry`` for a retry) after the outcome is committed; Celery acknowledges
a failed task's message as it does a successful one (``task_acks_on_failure_or_timeout``), so
nothing about delivery changes. Steps a worker runs in place are announced with the same
states (see :meth:`workflow_engine.worker.runtime.Runtime._announce`).
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass

from workflow_engine.core.secrets import hide, masked
from workflow_engine.decisions.outcomes import Claim, Failure, Outcome, Success

SUMMARY_CHARS = 200
RETRYING = "retrying"


@dataclass(frozen=True, slots=True)
class Attempted:
    """One recorded attempt: what the agent did, and what the coordinator made of it
    (``result``: succeeded, retrying, waiting, failed or discarded)."""

    claim: Claim
    outcome: Outcome
    result: str

    @property
    def state(self) -> str:
        """Celery's name for it: SUCCESS, RETRY or FAILURE."""
        if isinstance(self.outcome, Success):
            return "SUCCESS"
        return "RETRY" if self.result == RETRYING else "FAILURE"

    @property
    def summary(self) -> str:
        """The task's result when it succeeded: the output, cut short."""
        if self.result == "discarded":
            return "discarded"
        assert isinstance(self.outcome, Success)
        text = json.dumps(masked(self.outcome.output), default=str, ensure_ascii=False)
        return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"

    @property
    def failure(self) -> StepAttemptFailed:
        """The exception a failed attempt is reported as, caused by what the agent raised."""
        assert isinstance(self.outcome, Failure)
        error = StepAttemptFailed(failure_message(self.outcome, self.result))
        cause = self.outcome.cause
        if cause is not None and self.outcome.hidden:  # its own traceback would tell a secret
            cause = StepAttemptFailed(self.traceback)
        error.__cause__ = cause
        return error

    @property
    def traceback(self) -> str:
        """The agent's traceback, or the failure alone when the agent raised nothing."""
        assert isinstance(self.outcome, Failure)
        cause = self.outcome.cause
        if cause is None:
            return f"{StepAttemptFailed.__name__}: {failure_message(self.outcome, self.result)}\n"
        text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
        return hide(text, self.outcome.hidden) if self.outcome.hidden else text


class StepAttemptFailed(Exception):
    """A step attempt that failed, as Celery and Flower see it (its message says how)."""


def failure_message(failure: Failure, result: str) -> str:
    """A failed attempt's message: its error, then what follows (another attempt, a wait for a fix, the
    step's end)."""
    code = f" [{failure.code}]" if failure.code else ""
    then = {RETRYING: "another attempt is scheduled", "waiting": "the execution waits for a fix"}
    after = then.get(result, f"the step {result}" if result != "failed" else "the step failed")
    return f"{failure.error_type}{code}: {failure.message} ({after})"
