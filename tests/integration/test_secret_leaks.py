"""Real processes (`wfe worker`, `wfe coordinator`, `wfe api`, `wfe flower`, Redis, PostgreSQL):
agents that return and raise with a secret embedded (inside text, as a key, as a number, in a
checkpoint, an error's code and message, a traceback) leave it in no database row, no answer of
the API's logs view, no worker log line, no task Flower heard of (the task events on Redis) and
no Redis key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis
import sqlalchemy as sa
from celery import Celery

from tests.integration.conftest import FAST, broker_settings
from tests.integration.test_api_server import Server, serving, wfe_command
from tests.integration.test_ops import Flower, watching_flower
from tests.support.polling import poll
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.secrets import new_key
from workflow_engine.settings import Settings
from workflow_engine.store import schema

pytestmark = [pytest.mark.slow, pytest.mark.long]


@pytest.fixture(scope="module")
def sealed_server(
    redis_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A worker, a coordinator and the API, with a key and the leaky agents loaded."""
    fast = {**FAST, "agent_modules": ("tests.support.agents", "tests.integration.leaky_agents")}
    settings = Settings(
        database_url=pg_module_url,
        **broker_settings("redis", redis_url),
        **fast,
        encryption_keys=new_key(),
        jwt_secret="integration-test-secret-0123456789abcdef",
    )
    with serving(
        settings, tmp_path_factory.mktemp("secret-leaks"), {"alice": "operator"}, root=False
    ) as served:
        yield served


@pytest.fixture(scope="module")
def flower(sealed_server: Server) -> Flower:
    """`wfe flower` on that cluster, once the worker sends task events (Flower turns them on)."""
    return watching_flower(sealed_server.cluster)


def test_a_secret_an_agent_returns_or_raises_changed_is_in_no_row_logs_view_log_line_task_or_redis_key(
    sealed_server: Server, flower: Flower
) -> None:
    cluster = sealed_server.cluster
    key, pin = f"sk-{uuid.uuid4().hex}", 700000 + uuid.uuid4().int % 99999
    alice = cluster.engine.store.get_user("alice").id
    cluster.engine.register(
        WorkflowBuilder("leaky")
        .agent("returns", "leak_return")
        .agent("raises", "leak_raise", after="returns", retry={"max_attempts": 2, "initial_delay": 0.1})
        .secrets("input.key", "input.pin"),
        created_by=alice,
    )
    execution = cluster.engine.start("leaky", {"key": key, "pin": pin}, owner_id=alice).id
    assert cluster.wait(execution).status == "failed"
    logs = sealed_server.get(f"/executions/{execution}/logs")
    assert logs.status_code == 200, logs.text
    attempts = {(a["step_name"], a["attempt"]): a for a in logs.json()}
    assert attempts[("returns", 1)]["output_data"] == {
        "header": "Bearer ***",
        "***": "as a key",
        "count": "***",
        "deep": [[{"k": "x***y"}]],
    }
    first, second = attempts[("raises", 1)], attempts[("raises", 2)]
    assert (first["error_code"], first["error_message"]) == ("E***", "the vendor refused ***")
    assert second["error_message"] == "VendorRefused: still refused: *** (pin ***)"
    expected = [f"{execution}:{task}" for task in ("returns:1", "raises:1", "raises:2")]
    tasks = poll(
        lambda: (found := flower.tasks(execution)) and all(u in found for u in expected) and found,
        20,
        "Flower to show every attempt",
        explain=lambda: flower.tasks(execution),
    )
    assert "[E***]: the vendor refused ***" in tasks[f"{execution}:raises:1"]["exception"]
    logged = "".join(path.read_text() for path in cluster.logs.glob("*.log"))
    assert "calling with Bearer *** and pin ***" in logged
    assert "VendorRefused: still refused: ***" in logged  # (its traceback, as the worker logged it)
    with cluster.engine.store.engine.connect() as conn:
        rows = "\n".join(
            repr(tuple(row))
            for table in schema.metadata.sorted_tables
            for row in conn.execute(sa.select(table))
        )
    client = redis.Redis.from_url(cluster.settings.broker_url)
    try:
        prefix = cluster.settings.broker_transport_options["global_keyprefix"]
        stored = [client.dump(name) or b"" for name in client.scan_iter(match=f"{prefix}*")]
    finally:
        client.close()
    surfaces = {
        "the tables": rows,
        "the API's logs view": logs.text,
        "the execution": sealed_server.get(f"/executions/{execution}?include_events=true").text,
        "the log files": logged,
        "Flower's tasks": json.dumps(tasks),
        "redis": b"".join(stored).decode("latin-1"),
    }
    for plain in (key, str(pin)):
        assert [name for name, text in surfaces.items() if plain in text] == [], plain
    assert json.dumps(attempts[("returns", 1)]).count("***") >= 4


def test_a_sealed_value_is_refused_by_the_real_api_the_command_line_and_a_celery_message(
    sealed_server: Server,
) -> None:
    cluster = sealed_server.cluster
    cluster.engine.register(
        WorkflowBuilder("vaulted").agent("a", "echo").secrets("input.key")
    )  # the deployment's
    started = cluster.engine.start("vaulted", {"key": "sk-mine-0123"})
    with cluster.engine.store.engine.connect() as conn:
        stored = conn.execute(
            sa.select(schema.executions.c.input).where(schema.executions.c.id == started.id)
        )
        forged = {"key": stored.scalar()["key"]}  # a real token, sent back
    before = cluster.engine.executions()[1]
    answer = sealed_server.post("/executions", json={"workflow": "vaulted", "input_data": forged})
    assert answer.status_code == 422 and "'$sealed' is reserved" in answer.json()["detail"], answer.text
    command = wfe_command(cluster.settings, "submit", "vaulted", "--input", json.dumps(forged))
    assert command.returncode != 0 and "'$sealed' is reserved" in command.stderr, command
    assert len(command.stderr.strip().splitlines()) == 1 and "Traceback" not in command.stderr
    client = Celery("other-service", broker=cluster.settings.broker_url)
    client.conf.broker_transport_options = cluster.settings.broker_transport_options
    client.conf.task_default_queue = cluster.settings.intake_queue
    try:
        client.send_task("wfe.start_workflow", kwargs={"workflow": "vaulted", "input_data": forged})
        cluster.wait_for(
            lambda: any("'$sealed' is reserved" in path.read_text() for path in cluster.logs.glob("*.log")),
            what="the intake to refuse the message",
        )
    finally:
        client.close()
    assert cluster.engine.executions()[1] == before  # nothing started
