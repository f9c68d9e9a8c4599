"""A registered version's cases run by the API (POST/GET /testing/runs), and executions moved
to another version (POST /executions/{id}/migrate), on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import Api

CHILD = {"name": "stamp", "version": "1.0.0", "steps": [{"name": "stamp", "agent": "stamper"}]}
REVIEWED: dict[str, Any] = {
    "name": "reviewed",
    "version": "1.0.0",
    "steps": [
        {
            "name": "draft",
            "agent": "writer",
            "retry": {"max_attempts": 3, "initial_delay": 30, "max_delay": 60},
        },
        {"name": "approve", "type": "human"},
        {"name": "seal", "type": "workflow", "workflow": "stamp"},
    ],
    "edges": [
        {"from": "draft", "to": "approve"},
        {"from": "approve", "to": "seal", "when": "steps.approve.ok"},
    ],
    "tests": [
        {
            "name": "approved and sealed",
            "mocks": {
                "writer": {"error": "transient", "times": 2, "output": {"words": 9}},
                "stamper": {"at": 1},
            },
            "human": {"approve": {"ok": True}},
            "expect": {
                "status": "completed",
                "steps": {"seal": "succeeded"},
                "output": {"seal": {"stamp": {"at": 1}}},
            },
        },
        {
            "name": "wrongly expects a rejection to seal",
            "mocks": {"writer": {}, "stamper": {}},
            "human": {"approve": {"ok": False}},
            "expect": {"steps": {"seal": "succeeded"}},
        },
    ],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def api_on(request: pytest.FixtureRequest, api_factory: Callable[..., Api]) -> Api:
    return api_factory(backend=request.param)


def test_a_registered_versions_cases_run_and_their_result_is_kept(api_on: Api) -> None:
    api = api_on
    api.register(CHILD)
    api.register(REVIEWED)
    response = api.post("/testing/runs", json={"workflow": "reviewed"})
    assert response.status_code == 201, response.text
    run = response.json()
    assert (run["workflow"], run["version"], run["passed"], run["failed"]) == ("reviewed", "1.0.0", 1, 1)
    first, second = run["cases"]
    assert (first["case"], first["passed"], first["path"]) == (
        "approved and sealed",
        True,
        ["draft", "approve", "seal"],
    )
    assert second["differences"] == ["steps.seal: expected succeeded, got skipped"]
    kept = api.get(f"/testing/runs/{run['id']}")
    assert kept.status_code == 200
    assert kept.json() == run
    # nothing ran in the deployment itself
    assert api.get("/executions").json()["total"] == 0


def test_testing_runs_refuse_what_they_cannot_do(api: Api) -> None:
    api.register(CHILD)
    api.register(REVIEWED)
    assert api.post("/testing/runs", "vic", json={"workflow": "reviewed"}).status_code == 403
    missing = api.post("/testing/runs", json={"workflow": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert api.post("/testing/runs", json={"workflow": "reviewed", "version": "9.0.0"}).status_code == 404
    assert api.post("/testing/runs", json={"flow": "reviewed"}).status_code == 422
    run = api.post("/testing/runs", json={"workflow": "reviewed", "version": "1.0.0"}).json()
    assert api.get(f"/testing/runs/{run['id']}", "bob").status_code == 404  # alice's
    assert api.get(f"/testing/runs/{run['id']}", "root").status_code == 200
    assert api.get("/testing/runs/999999").status_code == 404
    assert api.get("/testing/runs/zero").status_code == 422


SIMPLE = {
    "name": "simple",
    "version": "1.0.0",
    "steps": [
        {"name": "a", "agent": "echo"},
        {"name": "wait", "type": "human"},
        {"name": "b", "agent": "echo"},
    ],
}


def test_an_execution_moves_to_a_compatible_version_and_the_move_is_recorded(api_on: Api) -> None:
    api = api_on
    api.harness.agent("echo")
    api.register(SIMPLE)
    api.register({**SIMPLE, "version": "1.1.0", "steps": [*SIMPLE["steps"], {"name": "c", "agent": "echo"}]})
    execution = api.start("simple", version="1.0.0")
    api.harness.work()
    moved = api.post(f"/executions/{execution}/migrate", json={"version": "1.1.0"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["version"], moved.json()["status"]) == ("1.1.0", "waiting")
    history = api.get(f"/executions/{execution}", params={"include_events": True}).json()["events"]
    assert any(e["reason"] == "migrated from version 1.0.0 to 1.1.0" for e in history)
    api.post(f"/executions/{execution}/steps/wait/complete", json={"data": {}})
    api.harness.work()
    done = api.get(f"/executions/{execution}").json()
    assert (done["status"], [s["name"] for s in done["steps"]]) == ("completed", ["a", "wait", "b", "c"])


def test_a_move_that_would_lose_a_step_is_refused_with_the_reason_and_changes_nothing(api: Api) -> None:
    api.harness.agent("echo")
    api.register(SIMPLE)
    api.register({**SIMPLE, "version": "2.0.0", "steps": SIMPLE["steps"][1:]})
    execution = api.start("simple", version="1.0.0")
    api.harness.work()
    before = api.get(f"/executions/{execution}", params={"include_events": True}).json()
    refused = api.post(f"/executions/{execution}/migrate", json={"version": "2.0.0"})
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "cannot migrate to version 2.0.0: step 'a' has run and version 2.0.0 has no such step"
    )
    after = api.get(f"/executions/{execution}", params={"include_events": True}).json()
    assert after == before and after["version"] == "1.0.0"
    assert api.post(f"/executions/{execution}/migrate", json={"version": "7.0.0"}).status_code == 404
    assert api.post(f"/executions/{execution}/migrate", json={}).status_code == 422
    assert api.post(f"/executions/{execution}/migrate", "vic", json={"version": "2.0.0"}).status_code == 403
    assert api.post(f"/executions/{execution}/migrate", "bob", json={"version": "2.0.0"}).status_code == 404
