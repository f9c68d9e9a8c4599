"""Running one step attempt in a worker: claim it, call its agent, report the outcome."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from workflow_engine import logs, metrics
from workflow_engine.agents import AgentContext, AgentRegistry, AgentSpec, idempotency_key
from workflow_engine.coordinator.service import Coordinator
from workflow_engine.core.payloads import output_problem, payload_problem
from workflow_engine.core.quotas import OUTPUT_TOO_LARGE, json_size
from workflow_engine.core.retry import FailureKind, classify, error_type
from workflow_engine.core.secrets import hide
from workflow_engine.decisions.outcomes import Claim, Failure, Outcome, Success
from workflow_engine.errors import FatalError, StepError, TransientError
from workflow_engine.secrets import KeyMissing, Keyring
from workflow_engine.store.database import retrying
from workflow_engine.store.repository import Store
from workflow_engine.worker.heartbeat import Heartbeat
from workflow_engine.worker.reports import Attempted

log = logging.getLogger(__name__)
_loops = threading.local()


def _event_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    return loop


class OutputTooLarge(TypeError):
    """An output larger than WFE_MAX_OUTPUT_BYTES: the step fails, nothing of it stored."""


def normalise_output(result: Any, limit: int = 0) -> dict[str, Any]:
    """A step's output is a JSON object of at most ``limit`` bytes (0: any); None means an
    empty one."""
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise TypeError(f"an agent must return a dict (a JSON object), not {type(result).__name__}")
    try:
        text = json.dumps(result, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(f"the output is not JSON-serialisable: {exc}") from None
    too_large = output_problem("output", len(text.encode("utf-8", "surrogatepass")), limit)
    if too_large is not None:
        raise OutputTooLarge(too_large)
    try:
        loaded: dict[str, Any] = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise TypeError(f"the output is not JSON-serialisable: {exc}") from None
    problem = payload_problem(loaded)
    if problem is not None:
        raise TypeError(f"the output cannot be stored: {problem}")
    return loaded


def describe(error: BaseException) -> str:
    if isinstance(error, StepError):
        return error.message or type(error).__name__
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Services:
    def __init__(self, coordinator: Coordinator, store: Store) -> None:
        self.coordinator = coordinator
        self.store = store

    def save_checkpoint(self, run_id: int, data: Any) -> None:
        problem = payload_problem(data)
        if problem is not None:
            raise TypeError(f"the checkpoint cannot be stored: {problem}")
        limit = self.coordinator.settings.max_output_bytes
        too_large = output_problem("checkpoint", json_size(data), limit)
        if too_large is not None:  # (the step fails, unless its agent catches this)
            raise FatalError(too_large, OUTPUT_TOO_LARGE)
        self.coordinator.save_checkpoint(run_id, data)

    def is_cancelled(self, run_id: int) -> bool:
        return self.coordinator.is_cancelled(run_id)

    def outputs(self, execution_id: str) -> dict[str, Any]:
        return self.store.step_outputs(execution_id)


class _Opened:
    """One attempt's services: the outputs it reads opened, the checkpoints it saves with what
    it was given sealed again; ``texts`` gathers the secret texts it was given."""

    def __init__(self, services: _Services, keys: Keyring, texts: dict[str, Any]) -> None:
        self.services = services
        self.keys = keys
        self.texts = texts

    def save_checkpoint(self, run_id: int, data: Any) -> None:
        self.services.save_checkpoint(run_id, self.keys.sealed(data, known=self.texts))

    def is_cancelled(self, run_id: int) -> bool:
        return self.services.is_cancelled(run_id)

    def outputs(self, execution_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.keys.opened(self.services.outputs(execution_id), self.texts)
        return found


class StepExecutor:
    def __init__(
        self,
        coordinator: Coordinator,
        registry: AgentRegistry,
        heartbeat: Heartbeat,
        store: Store,
        announce: Callable[[Attempted], None] | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.recorder = coordinator.recorder
        self.registry = registry
        self.heartbeat = heartbeat
        self.worker_id = heartbeat.worker_id
        self.services = _Services(coordinator, store)
        # told of each step run in place (it has no Celery task of its own): Flower hears of it
        self.announce = announce

    def execute(
        self, run_id: int, task_id: str | None = None, inline_steps: int = 0, rated: bool = False
    ) -> Attempted | None:
        """Claim ``run_id``, run it, record what happened; what became of that attempt (None
        when it was taken already: done, cancelled or claimed elsewhere, and left alone).

        With ``inline_steps``, the step that follows (when it is the only one) is run here,
        at once, up to that many times, instead of going through the broker. Every log line
        written about a claimed step names it. A ``rated`` run (its step has a rate limit) may
        be left to wait for its window.
        """
        claim = retrying(partial(self.recorder.claim, run_id, self.worker_id, task_id, rated))
        if claim is None:
            log.info("run %s is no longer queued (done, cancelled or taken): left alone", run_id)
        own: Attempted | None = None
        budget = inline_steps
        while claim is not None:
            carrier = task_id if budget > 0 else None
            with logs.about_step(claim.execution_id, claim.step.name, claim.attempt, claim.workflow):
                with self.heartbeat.beating(claim.run_id):
                    outcome = self.run(claim)
                finished = retrying(partial(self.recorder.record, claim, outcome, in_place=carrier))
                metrics.observe_attempt(claim, outcome.duration_ms, finished.result)
                attempted = Attempted(claim, outcome, finished.result)
                if claim.run_id != run_id and self.announce is not None:
                    self.announce(attempted)
            own = own or attempted
            claim = finished.next  # the step to run in place next, if any
            budget -= 1
        return own

    def run(self, claim: Claim) -> Outcome:
        step = claim.step
        started = time.monotonic()
        try:  # (its sealed values open here only, bound to this execution)
            keys, given, texts = self.coordinator.keys.for_attempt(
                claim.execution_id, claim.input, claim.item, claim.checkpoint
            )
        except KeyMissing as error:
            elapsed = int((time.monotonic() - started) * 1000)
            return Failure(FailureKind.FATAL, "key_missing", error.message, elapsed)
        spec = self.registry.get(step.served_as or "")
        if spec is None:
            loaded = ", ".join(sorted(self.registry.names())) or "none"
            what = f"Celery task {step.task!r}" if step.task else f"agent {step.agent!r}"
            message = f"{what} is not loaded on worker {self.worker_id} (loaded: {loaded})"
            return Failure(FailureKind.FATAL, "unknown_agent", message, 0)
        context = AgentContext(
            run_id=claim.run_id,
            execution_id=claim.execution_id,
            workflow=claim.workflow,
            version=claim.version,
            step_name=step.name,
            attempt=claim.attempt,
            idempotency_key=idempotency_key(claim.execution_id, step.name, claim.index, claim.retries),
            input=given[0],
            metadata=claim.metadata,
            config=dict(step.config),
            checkpoint=given[2],
            services=_Opened(self.services, keys, texts) if keys is not None else self.services,
            item=given[1],
            index=claim.index,
        )
        if texts:  # the secret texts it was given are hidden in every line it logs
            with logs.hiding(texts):
                outcome = self._call(spec, context, claim, started)
        else:
            outcome = self._call(spec, context, claim, started)
        if isinstance(outcome, Failure) and texts:
            code = outcome.code and hide(outcome.code, texts)
            error_type, message = hide(outcome.error_type, texts), hide(outcome.message, texts)
            return replace(outcome, error_type=error_type, code=code, message=message, hidden=tuple(texts))
        if isinstance(outcome, Success) and keys is not None:
            paths = self.coordinator.definitions.get(claim.workflow_id).secret_paths.outputs.get(
                step.name, ()
            )
            if paths or texts:
                return replace(outcome, output=keys.sealed(outcome.output, paths, texts))
        return outcome

    def _call(self, spec: AgentSpec, context: AgentContext, claim: Claim, started: float) -> Outcome:
        """Call the agent (a sync one, or an async one run to completion, bounded by the step's
        timeout) and check what it returned."""
        step = claim.step
        try:
            if spec.is_async:
                coroutine = asyncio.wait_for(spec.function(context), step.timeout)
                result = _event_loop().run_until_complete(coroutine)
            else:
                result = spec.function(context)
        except SoftTimeLimitExceeded as error:
            return Failure(
                FailureKind.TRANSIENT,
                "timeout",
                f"ran past its timeout of {step.timeout:g}s",
                int((time.monotonic() - started) * 1000),
                cause=error,
            )
        except Exception as error:
            kind = classify(error)
            if kind is FailureKind.FATAL and not isinstance(error, StepError):
                log.exception("step %s of %s raised", step.name, claim.execution_id)
            code = getattr(error, "code", None)
            return Failure(
                kind,
                error_type(error),
                describe(error),
                int((time.monotonic() - started) * 1000),
                code if isinstance(code, str) else None,
                retry_in=error.retry_in if isinstance(error, TransientError) else None,
                cause=error,
            )
        try:
            output = normalise_output(result, self.coordinator.settings.max_output_bytes)
        except OutputTooLarge as error:
            elapsed = int((time.monotonic() - started) * 1000)
            return Failure(FailureKind.FATAL, FatalError.error_type, str(error), elapsed, OUTPUT_TOO_LARGE)
        except TypeError as error:
            return Failure(
                FailureKind.FATAL, "invalid_output", str(error), int((time.monotonic() - started) * 1000)
            )
        return Success(output, int((time.monotonic() - started) * 1000))
