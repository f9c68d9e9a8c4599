"""The same core scenarios with RabbitMQ as the broker (PostgreSQL store)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from kombu import Connection

from tests.integration.conftest import FAST, Cluster, broker_settings, ledger_lines, running_cluster
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.long]


@pytest.fixture(scope="module")
def rabbit(amqp_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    settings = Settings(database_url=pg_module_url, **broker_settings("amqp", amqp_url), **FAST)
    try:
        with running_cluster(settings, tmp_path_factory.mktemp("rabbit")) as cluster:
            yield cluster
    finally:
        with Connection(amqp_url) as connection:  # leave no queue behind on the shared broker
            channel = connection.default_channel
            for queue in (settings.steps_queue, settings.coordinator_queue, settings.intake_queue):
                channel.queue_delete(queue)


def test_sequence_fan_out_and_join_on_rabbitmq(rabbit: Cluster, ledger: Path) -> None:
    engine = rabbit.engine
    builder = WorkflowBuilder("r-fan").agent("start", "echo")
    for branch in ("x", "y", "z"):
        builder.agent(branch, "echo", after="start")
    engine.register(builder.agent("join", "echo", after=["x", "y", "z"]).agent("end", "echo", after="join"))
    final = rabbit.wait(engine.start("r-fan", metadata={"ledger": str(ledger)}).id)
    assert final.status == "completed"
    calls = [line[1] for line in ledger_lines(ledger)]
    assert calls.count("join") == 1 and calls[-2:] == ["join", "end"]


def test_retries_human_task_and_timer_on_rabbitmq(rabbit: Cluster) -> None:
    engine = rabbit.engine
    engine.register(
        WorkflowBuilder("r-mix")
        .agent("flaky", "flaky", retry={"initial_delay": 0.5})
        .human("approve", after="flaky")
        .timer("pause", after="approve", delay=1)
        .agent("done", "echo", after="pause")
    )
    waiting = rabbit.wait(engine.start("r-mix").id)
    assert waiting.status == "waiting"
    assert {s.name: s.attempts for s in waiting.steps}["flaky"] == 2
    engine.complete_human_task(waiting.id, "approve", {"ok": True}, user_id="tester")
    assert rabbit.wait(waiting.id).status == "completed"


def test_a_killed_worker_does_not_stop_an_execution_on_rabbitmq(rabbit: Cluster) -> None:
    engine = rabbit.engine
    engine.register(WorkflowBuilder("r-kill").agent("a", "slow", config={"seconds": 2}).agent("b", "echo"))
    view = engine.start("r-kill")
    rabbit.wait_for(lambda: rabbit.step_status(view.id, "a") == "running", what="a running")
    victim = next(p for p in rabbit.processes.processes if p.name == "worker0" and p.alive())
    victim.signal(signal.SIGKILL)
    victim.popen.wait(10)  # type: ignore[union-attr]
    rabbit.processes.start_worker("worker0-replacement")
    final = rabbit.wait(view.id, timeout=60)
    assert final.status == "completed"
    assert [r["error_type"] for r in engine.logs(view.id) if r["step_name"] == "a"] == ["worker_lost", None]


def test_a_plain_celery_client_starts_a_workflow_over_rabbitmq(rabbit: Cluster) -> None:
    engine = rabbit.engine
    engine.register(WorkflowBuilder("r-remote").agent("a", "echo"))
    client = Celery("other-service", broker=rabbit.settings.broker_url)
    client.conf.task_default_queue = rabbit.settings.intake_queue
    try:
        client.send_task("wfe.start_workflow", kwargs={"workflow": "r-remote", "idempotency_key": "rabbit-1"})
        rabbit.wait_for(
            lambda: any(v.workflow == "r-remote" for v in engine.executions()[0]), what="remote start"
        )
    finally:
        client.close()
    view = next(v for v in engine.executions()[0] if v.workflow == "r-remote")
    assert rabbit.wait(view.id).status == "completed"
