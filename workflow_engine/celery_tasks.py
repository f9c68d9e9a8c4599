"""Celery tasks as steps: a step of ``type: task`` runs the body of an existing Celery task.

A worker imports the modules that define the tasks (``WFE_TASK_MODULES``, ``wfe worker
--tasks``: the modules ``celery -A`` would load) and serves each task they register, in any
Celery app, under ``task:<name>`` in its agent registry, beside its agents: it reports them
with its heartbeat, so a start that names a task no worker loads is refused like an unknown
agent. An attempt runs the task's body in the step's attempt (no second Celery message), as a
Celery worker would run it:

- with the arguments the step's decision evaluated (its run's input ``{"args", "kwargs"}``);
- ``self.request.id`` is the attempt's task id, ``self.request.retries`` the attempts before it;
- ``self.retry(countdown=N)``, and an exception in the task's ``autoretry_for`` (which Celery
  turns into a retry after its ``retry_backoff``), is a transient failure retried after the
  delay Celery gives, while the task's ``max_retries`` allows (past it, Celery raises the
  exception: the step fails); any other exception fails the step at once (fatal), under the
  exception's class name;
- a return value that is a JSON object is the step's output; any other is ``{"result": value}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from celery import Task, current_app
from celery._state import _get_active_apps
from celery.exceptions import Retry

from workflow_engine.agents import REGISTRY, AgentContext, AgentRegistry, load_modules
from workflow_engine.decisions.dispatch import task_id
from workflow_engine.definitions.model import TASK_PREFIX
from workflow_engine.errors import FatalError, StepError, TransientError

ENGINE_TASKS = ("celery.", "wfe.")  # Celery's own tasks and the engine's: not steps


class TaskFailed(FatalError):
    """A Celery task raised an exception that it does not retry on: the step fails at once,
    under the exception's class name."""

    def __init__(self, message: str = "", code: str | None = None, error_type: str = "fatal") -> None:
        super().__init__(message, code)
        self.error_type = error_type

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.code, self.error_type))


def load_tasks(modules: Iterable[str], registry: AgentRegistry = REGISTRY) -> list[str]:
    """Import the task ``modules`` and serve their tasks: the names served."""
    load_modules(modules, what="task")
    return serve_tasks(registry)


def serve_tasks(registry: AgentRegistry = REGISTRY) -> list[str]:
    """Serve every task the live Celery apps register (not Celery's own, not the engine's)
    under ``task:<name>`` in ``registry``: the names newly served."""
    served = []
    # a process with no Celery app of its own yet (the command line) gets Celery's default one,
    # which takes the tasks of @shared_task
    current_app.tasks  # noqa: B018
    for app in list(_get_active_apps()):
        for name, task in list(app.tasks.items()):
            if name.startswith(ENGINE_TASKS) or TASK_PREFIX + name in registry:
                continue  # (a shared task is registered in every app: served once)
            registry.register(TASK_PREFIX + name, partial(run_task, task))
            served.append(name)
    return served


def run_task(task: Task, ctx: AgentContext) -> dict[str, Any]:
    """Run the body of ``task`` for the attempt ``ctx`` describes (see the module's docstring)."""
    given = ctx.input if isinstance(ctx.input, dict) else {}
    args, kwargs = list(given.get("args") or ()), dict(given.get("kwargs") or {})
    request = {
        "id": task_id(ctx.execution_id, ctx.step_name, ctx.attempt, ctx.index),
        "retries": ctx.attempt - 1,
        "args": args,
        "kwargs": kwargs,
        # run here, not by Celery's worker: Task.retry raises its Retry instead of publishing
        "is_eager": True,
        "called_directly": False,
    }
    task.push_request(**request)
    try:
        result = task.run(*args, **kwargs)
    except Retry as retry:
        cause = f": {type(retry.exc).__name__}: {retry.exc}" if retry.exc is not None else ""
        message = f"{task.name} asked to be retried{cause}"
        raise TransientError(message, retry_in=_seconds(retry.when, task)) from retry.exc
    except StepError:
        raise
    except Exception as error:
        text = str(error)
        message = f"{type(error).__name__}: {text}" if text else type(error).__name__
        raise TaskFailed(message, error_type=type(error).__name__) from error
    finally:
        task.pop_request()
    return result if isinstance(result, dict) else {"result": result}


def _seconds(when: Any, task: Task) -> float:
    """The delay a Retry names: a countdown in seconds, or an ETA (its task's default delay
    when it names neither)."""
    if isinstance(when, datetime):
        moment = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        return max(0.0, (moment - datetime.now(UTC)).total_seconds())
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return max(0.0, float(when))
    return float(task.default_retry_delay or 0)
