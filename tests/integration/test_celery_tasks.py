"""Celery tasks as steps on real processes: a worker that loads a module of Celery tasks
(WFE_TASK_MODULES) runs their bodies as steps, and reports them, so a definition naming a task
no worker loads is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.integration.conftest import FAST, Cluster, broker_settings, running_cluster
from workflow_engine.errors import DefinitionError
from workflow_engine.settings import Settings

SHOP = {
    "name": "shop",
    "steps": [
        {"name": "sum", "type": "task", "task": "shop.add", "args": ["input.a", "input.b"]},
        {
            "name": "receipt",
            "type": "task",
            "task": "shop.receipt",
            "args": ["steps.sum.result"],
            "kwargs": {"currency": "input.currency"},
        },
    ],
}


@pytest.fixture(scope="module")
def shop_cluster(
    redis_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    settings = Settings(
        database_url=pg_module_url,
        **broker_settings("redis", redis_url),
        **{**FAST, "task_modules": ("tests.support.tasks",)},
    )
    with running_cluster(settings, tmp_path_factory.mktemp("shop-cluster")) as cluster:
        yield cluster


def reported(cluster: Cluster) -> None:
    store = cluster.engine.store

    def known() -> bool:
        return "task:shop.add" in store.known_agents(store.clock.now() - timedelta(hours=1))

    cluster.wait_for(known, 30, "the worker to report its Celery tasks")


def test_task_steps_run_the_task_bodies_and_pass_results(shop_cluster: Cluster) -> None:
    engine = shop_cluster.engine
    reported(shop_cluster)
    engine.register(SHOP)
    execution = engine.start("shop", {"a": 2, "b": 40, "currency": "GBP"}).id
    view = shop_cluster.wait(execution)
    assert view.status == "completed", (view.error, [(s.name, s.status, s.error) for s in view.steps])
    outputs = {step.name: step.output for step in view.steps}
    assert outputs["sum"] == {"result": 42}
    # the bound task asked to be retried once (self.retry(countdown=1)): its second attempt
    # saw its attempt's task id and one retry before it
    expected = {"total": 42, "currency": "GBP", "id": f"{execution}:receipt:2", "retries": 1}
    assert outputs["receipt"] == expected
    attempts = [(r.step_name, r.attempt, r.status) for r in engine.store.step_runs(execution)]
    assert ("receipt", 1, "failed") in attempts and ("receipt", 2, "succeeded") in attempts


def test_a_task_no_worker_loads_is_refused(shop_cluster: Cluster) -> None:
    engine = shop_cluster.engine
    reported(shop_cluster)
    engine.register({"name": "nowhere", "steps": [{"name": "x", "type": "task", "task": "shop.nowhere"}]})
    with pytest.raises(DefinitionError, match=r"unknown Celery task 'shop\.nowhere': no worker loads it"):
        engine.start("nowhere")
