"""The Celery tasks: thin adapters that take ids and hand over to the runtime."""

from __future__ import annotations

from typing import Any

from celery.exceptions import Retry

from workflow_engine import logs
from workflow_engine.outages import DATABASE, is_outage
from workflow_engine.settings import Settings
from workflow_engine.worker.app import EngineCelery, create_celery_app
from workflow_engine.worker.reports import StepAttemptFailed
from workflow_engine.worker.runtime import runtime_of


def worker_app(settings: Settings) -> EngineCelery:
    """The Celery app of a worker: configured from ``settings``, with the engine's tasks."""
    app = create_celery_app(settings)
    register_tasks(app)
    return app


def register_tasks(app: EngineCelery) -> None:
    @app.task(  # type: ignore[untyped-decorator]
        name="wfe.step",
        bind=True,
        ignore_result=True,
        acks_late=True,
        reject_on_worker_lost=True,
        shared=False,
        throws=(StepAttemptFailed,),  # an expected outcome: logged in one line, not as a crash
    )
    def run_step(
        task: Any,
        run_id: int,
        execution_id: str,
        step: str,
        attempt: int,
        workflow: str = "",
        rated: bool = False,
    ) -> str | None:
        """Run one attempt of one step (the ids are in the arguments so Flower shows them), and
        end in the state of its committed outcome (see :mod:`workflow_engine.worker.reports`)."""
        # a task under a Celery time limit runs only its own step: the limit would cover the rest
        limited = any(task.request.timelimit or ())
        steps_in_place = 0 if limited else app.settings.inline_steps
        try:  # (a worker process opens its store with its first task: that may fail too)
            executor = runtime_of(app).executor
            with logs.about_step(execution_id, step, attempt, workflow):  # (its claim's lines too)
                attempted = executor.execute(run_id, task.request.id, steps_in_place, rated=rated)
        except Exception as exc:
            if not is_outage(exc):
                raise
            # the run is as the database last saw it: queued (published again once the message
            # is overdue) or running (recovered once its heartbeats stop): nothing is lost
            DATABASE.failed(exc)
            return "the database is unreachable: the reconciler takes this step up again once it is back"
        DATABASE.ok()
        if attempted is None:
            return "nothing to run now (done, cancelled, taken, or waiting for its rate limit)"
        if attempted.state == "SUCCESS":
            # the summary is only read by task events: no output is rendered while they are off
            return attempted.summary if app.live_task_events.enabled else None
        failure = attempted.failure  # caused by what the agent raised: Flower shows its traceback
        if attempted.state == "RETRY":
            raise Retry(exc=failure) from failure
        raise failure

    @app.task(name="wfe.fire_timer", ignore_result=True, acks_late=True, shared=False)  # type: ignore[untyped-decorator]
    def fire_timer(run_id: int, execution_id: str, step: str, attempt: int, workflow: str = "") -> None:
        with logs.about_step(execution_id, step, attempt, workflow):
            try:
                runtime_of(app).coordinator.fire_timer(run_id)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                DATABASE.failed(exc)  # (a timer past due is fired by the reconciler)
                return
        DATABASE.ok()

    @app.task(name="wfe.start_workflow", bind=True, acks_late=True, shared=False)  # type: ignore[untyped-decorator]
    def start_workflow(
        task: Any,
        workflow: str,
        input_data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        version: str | None = None,
        idempotency_key: str | None = None,
        mode: str = "auto",
    ) -> str:
        """Start an execution from a plain Celery message; returns its id. Only the deployment's
        workflows (registered with the CLI) may be started this way: a message names no user."""
        try:
            coordinator = runtime_of(app).coordinator
            record = coordinator.start(
                workflow,
                visible_to=coordinator.store.system_user_id(),
                input_data=input_data,
                metadata=metadata,
                version=version,
                idempotency_key=idempotency_key,
                mode=mode,
                actor="celery",
            )
        except Exception as exc:
            if not is_outage(exc):
                raise
            # the request is only in this message: it is sent again, to be started once the
            # database is back (with an idempotency key, at most once)
            DATABASE.failed(exc)
            raise task.retry(exc=exc, countdown=DATABASE.pause(1.0, 30.0), max_retries=None) from exc
        DATABASE.ok()
        return str(record.id)
