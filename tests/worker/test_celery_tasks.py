"""Celery tasks as steps: a task's body run in a step's attempt, as Celery's worker runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.conftest import ROOT
from workflow_engine.agents import AgentContext, AgentRegistry
from workflow_engine.celery_tasks import TaskFailed, run_task, serve_tasks
from workflow_engine.decisions.dispatch import Dispatch
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import TransientError
from workflow_engine.settings import Settings
from workflow_engine.testing import Harness
from workflow_engine.worker.dispatcher import CeleryDispatcher
from workflow_engine.worker.tasks import worker_app

shop = Celery("shop", set_as_current=False)


@shop.task(name="shop.add")
def add(x: int, y: int) -> int:
    return x + y


@shop.task(name="shop.order", bind=True)
def order(self: Any, order_id: str, currency: str = "EUR") -> dict[str, Any]:
    return {"order": order_id, "currency": currency, "id": self.request.id, "retries": self.request.retries}


@shop.task(name="shop.later", bind=True, max_retries=2)
def later(self: Any) -> str:
    if self.request.retries < 1:
        raise self.retry(countdown=7)
    return "done"


@shop.task(name="shop.again", bind=True)
def again(self: Any, x: int) -> dict[str, Any]:
    if self.request.retries == 0:
        raise self.retry(countdown=2)
    return {"got": x}


@shop.task(name="shop.auto", autoretry_for=(KeyError,), default_retry_delay=5, max_retries=1)
def auto() -> None:
    raise KeyError("missing")


@shop.task(name="shop.broken")
def broken() -> None:
    raise ConnectionError("the shop is closed")  # not in autoretry_for: fatal, as in Celery


class _Services:
    def save_checkpoint(self, run_id: int, data: Any) -> None:
        raise AssertionError("not asked")

    def is_cancelled(self, run_id: int) -> bool:
        return False

    def outputs(self, execution_id: str) -> dict[str, Any]:
        return {}


def context(args: list[Any], kwargs: dict[str, Any] | None = None, attempt: int = 1) -> AgentContext:
    return AgentContext(
        run_id=1,
        execution_id="e1",
        workflow="w",
        version="1.0.0",
        step_name="s",
        attempt=attempt,
        idempotency_key="e1:s",
        input={"args": args, "kwargs": kwargs or {}},
        metadata={},
        config={},
        checkpoint=None,
        services=_Services(),
    )


def test_a_task_is_served_under_its_name() -> None:
    registry = AgentRegistry()
    served = serve_tasks(registry)
    assert {"shop.add", "shop.order", "shop.later", "shop.auto", "shop.broken"} <= set(served)
    assert "task:shop.add" in registry
    assert not any(name.startswith(("celery.", "wfe.")) for name in served)
    assert serve_tasks(registry) == []  # served once


def test_a_value_that_is_not_an_object_is_the_result() -> None:
    assert run_task(add, context([2, 3])) == {"result": 5}


def test_a_bound_task_sees_its_attempt_as_its_request() -> None:
    output = run_task(order, context(["o-1"], {"currency": "USD"}, attempt=3))
    assert output == {"order": "o-1", "currency": "USD", "id": "e1:s:3", "retries": 2}
    assert order.request.id is None  # (the request is gone once the body returns)


def test_self_retry_is_a_transient_failure_after_its_countdown() -> None:
    with pytest.raises(TransientError) as raised:
        run_task(later, context([]))
    assert raised.value.retry_in == 7
    assert run_task(later, context([], attempt=2)) == {"result": "done"}


def test_autoretry_for_is_transient_until_max_retries() -> None:
    with pytest.raises(TransientError) as raised:
        run_task(auto, context([]))
    assert raised.value.retry_in == 5  # its default_retry_delay, as Celery gives it
    with pytest.raises(TaskFailed) as failed:
        run_task(auto, context([], attempt=2))  # one retry allowed: the second attempt is the last
    assert failed.value.error_type == "KeyError"


def test_any_other_exception_fails_the_step_under_its_name() -> None:
    with pytest.raises(TaskFailed) as failed:
        run_task(broken, context([]))
    assert failed.value.error_type == "ConnectionError"
    assert failed.value.message == "ConnectionError: the shop is closed"


def test_a_chain_of_task_steps_passes_results() -> None:
    with Harness() as harness:
        serve_tasks(harness.agents)
        harness.register(
            {
                "name": "shop",
                "steps": [
                    {"name": "sum", "type": "task", "task": "shop.add", "args": ["input.a", "input.b"]},
                    {
                        "name": "order",
                        "type": "task",
                        "task": "shop.order",
                        "args": ["steps.sum.result"],
                        "kwargs": {"currency": "input.currency"},
                    },
                ],
            }
        )
        run = harness.start("shop", {"a": 2, "b": 40, "currency": "GBP"})
        harness.work()
        assert run.status == "completed", run.status
        outputs = harness.store.step_outputs(run.id)
        assert outputs["sum"] == {"result": 42}
        assert outputs["order"] == {"order": 42, "currency": "GBP", "id": f"{run.id}:order:1", "retries": 0}


def test_a_task_retried_by_itself_runs_again_after_its_countdown() -> None:
    with Harness() as harness:
        serve_tasks(harness.agents)
        harness.register({"name": "later", "steps": [{"name": "l", "type": "task", "task": "shop.later"}]})
        run = harness.start("later")
        harness.advance(6.9)
        assert run.status == "running"
        runs = harness.runs(run.id)
        assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "retrying")]
        assert (runs[1].not_before - runs[0].finished_at).total_seconds() == pytest.approx(7)
        harness.advance(7)
        assert run.status == "completed"


def test_a_task_retried_is_given_the_same_arguments_again() -> None:
    with Harness() as harness:
        serve_tasks(harness.agents)
        step = {"name": "a", "type": "task", "task": "shop.again", "args": ["input.x"]}
        harness.register({"name": "again", "steps": [step]})
        run = harness.start("again", {"x": 5})
        harness.work()
        assert run.status == "completed", harness.runs(run.id)
        assert [r.input for r in harness.runs(run.id)] == [{"args": [5], "kwargs": {}}] * 2
        assert harness.store.step_outputs(run.id)["a"] == {"got": 5}


def test_a_task_that_fails_fails_its_step_at_once() -> None:
    with Harness() as harness:
        serve_tasks(harness.agents)
        harness.register({"name": "broken", "steps": [{"name": "b", "type": "task", "task": "shop.broken"}]})
        run = harness.start("broken")
        harness.work()
        assert run.status == "failed"
        assert [(r.attempt, r.error_type) for r in harness.runs(run.id)] == [(1, "ConnectionError")]


def test_the_builder_writes_task_steps() -> None:
    built = (
        WorkflowBuilder("shop")
        .task("sum", "shop.add", args=["input.a", "input.b"])
        .task("receipt", "shop.order", args=["steps.sum.result"], kwargs={"currency": "input.c"}, after="sum")
        .build()
    )
    receipt = built.step("receipt")
    assert (receipt.type, receipt.task, receipt.args, receipt.kwargs) == (
        "task",
        "shop.order",
        ("steps.sum.result",),
        {"currency": "input.c"},
    )
    assert built.agents == {"task:shop.add", "task:shop.order"}


def test_flower_names_a_task_step_by_its_celery_task() -> None:
    app = worker_app(Settings(database_url="sqlite://"))
    try:
        built = WorkflowBuilder("shop").task("sum", "shop.add").agent("note", after="sum").build()
        options = CeleryDispatcher(app).options
        assert options(Dispatch.of(built.step("sum"), 1, "e1", "shop", 1))["shadow"] == "shop.add"
        assert options(Dispatch.of(built.step("note"), 2, "e1", "shop", 1))["shadow"] == "shop.note"
    finally:
        app.close()


def test_shared_tasks_are_served_by_a_process_with_no_celery_app(tmp_path: Path) -> None:
    (tmp_path / "only_shared.py").write_text(
        "from celery import shared_task\n\n\n@shared_task(name='shop.shared')\ndef shared(x):\n    return x\n"
    )
    script = (
        "from workflow_engine.agents import AgentRegistry\n"
        "from workflow_engine.celery_tasks import load_tasks\n"
        "print(load_tasks(['only_shared'], AgentRegistry()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['shop.shared']"
