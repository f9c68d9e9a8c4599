"""Quotas and size limits against a real `wfe api` with a real worker, coordinator, Redis and
PostgreSQL: what one operator account can still do to everyone else, refused over HTTP with a
clear JSON detail, and a step's output too large to store failed by the worker that ran it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import FAST, broker_settings
from tests.integration.test_api_server import Server, serving
from tests.support.polling import poll
from workflow_engine.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.long]

QUOTAS = {
    "quota_executions_in_flight": 3,
    "quota_starts_per_minute": 6,
    "quota_signals_kept": 2,
    "quota_schedules": 1,
    "schedule_min_interval": 10,
    "max_input_bytes": 20_000,
    "max_output_bytes": 50_000,
}
HELD = {"name": "held", "version": "1.0.0", "steps": [{"name": "approve", "type": "human"}]}
QUICK = {"name": "quick", "version": "1.0.0", "steps": [{"name": "a", "agent": "echo"}]}
BULKY = {"name": "bulky", "version": "1.0.0", "steps": [{"name": "make", "agent": "bulky"}]}
PAY = {
    "name": "pay",
    "version": "1.0.0",
    "steps": [{"name": "hold", "type": "human"}, {"name": "paid", "type": "wait", "signal": "payment"}],
    "edges": [{"from": "hold", "to": "paid"}],
}


@pytest.fixture(scope="module")
def server(redis_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = Settings(
        database_url=pg_module_url,
        **broker_settings("redis", redis_url),
        **{**FAST, "agent_modules": ("tests.support.agents", "tests.integration.quota_agents")},
        **QUOTAS,
        jwt_secret="integration-test-secret-0123456789abcdef",
    )
    users = dict.fromkeys(("alice", "bob", "carol", "dave"), "operator")
    with serving(settings, tmp_path_factory.mktemp("quotas"), users) as served:
        for definition in (HELD, QUICK, BULKY, PAY):  # the deployment's: every operator runs them
            served.cluster.engine.register(definition)
        yield served


def start(server: Server, user: str, workflow: str, **body: Any) -> httpx.Response:
    return server.post("/executions", user, json={"workflow": workflow, **body})


def status_of(server: Server, execution_id: str, user: str) -> str:
    return str(server.get(f"/executions/{execution_id}", user).json()["status"])


def reach(server: Server, execution_id: str, user: str, status: str) -> None:
    poll(lambda: status_of(server, execution_id, user) == status, 60, f"{execution_id} to be {status}")


def test_an_operator_may_have_only_so_many_executions_in_flight(server: Server) -> None:
    for _ in range(3):
        assert start(server, "alice", "held").status_code == 202
    refused = start(server, "alice", "held")
    assert refused.status_code == 429, refused.text
    assert "have not ended" in refused.json()["detail"]
    assert "WFE_QUOTA_EXECUTIONS_IN_FLIGHT" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) > 0
    # another operator is not held by alice's
    assert start(server, "bob", "held").status_code == 202


def test_an_operator_may_start_only_so_many_executions_a_minute(server: Server) -> None:
    for _ in range(6):
        started = start(server, "carol", "quick")
        assert started.status_code == 202, started.text
        ended = started.json()["execution_id"]
        reach(server, ended, "carol", "completed")
    refused = start(server, "carol", "quick")
    assert refused.status_code == 429, refused.text
    assert "within a minute" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_input_and_metadata_too_large_to_store_are_refused(server: Server) -> None:
    refused = start(server, "dave", "quick", input_data={"text": "x" * 30_000})
    assert refused.status_code == 422, refused.text
    assert "WFE_MAX_INPUT_BYTES" in refused.json()["detail"]


def test_an_output_too_large_fails_its_step_in_the_worker_and_is_not_stored(server: Server) -> None:
    started = start(server, "dave", "bulky", input_data={"size": 200_000})
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]
    reach(server, execution_id, "dave", "failed")
    view = server.get(f"/executions/{execution_id}?include_steps=true", "dave").json()
    step = view["steps"][0]
    assert step.get("output") is None and view["output"] is None
    assert step["error"]["code"] == "OUTPUT_TOO_LARGE", step
    assert "at most 50000" in step["error"]["message"]
    fine = start(server, "dave", "bulky", input_data={"size": 1000}).json()["execution_id"]
    reach(server, fine, "dave", "completed")


def test_kept_signals_and_signal_data_are_limited(server: Server) -> None:
    execution_id = start(server, "bob", "pay").json()["execution_id"]
    path = f"/executions/{execution_id}/signals/payment"
    too_large = server.post(path, "bob", json={"data": {"text": "x" * 60_000}})
    assert too_large.status_code == 422 and "WFE_MAX_OUTPUT_BYTES" in too_large.json()["detail"]
    for n in range(2):
        assert server.post(path, "bob", json={"data": {"n": n}}).status_code == 200
    refused = server.post(path, "bob", json={"data": {"n": 3}})
    assert refused.status_code == 429, refused.text
    assert "WFE_QUOTA_SIGNALS_KEPT" in refused.json()["detail"] and "Retry-After" in refused.headers


def test_schedules_per_operator_and_their_shortest_interval(server: Server) -> None:
    often = {"name": "often", "workflow": "quick", "every": 1}
    refused = server.post("/schedules", "dave", json=often)
    assert refused.status_code == 422 and "WFE_SCHEDULE_MIN_INTERVAL" in refused.text
    created = server.post("/schedules", "dave", json={"name": "poll", "workflow": "quick", "every": 3600})
    assert created.status_code == 201, created.text
    more = server.post("/schedules", "dave", json={"name": "more", "workflow": "quick", "every": 3600})
    assert more.status_code == 429 and "WFE_QUOTA_SCHEDULES" in more.json()["detail"]
