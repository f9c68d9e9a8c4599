"""POST /workflows checks the agents of a version against the live workers' (422 with a problem
per step, unless allow_unknown_agents), and DELETE /workflows/{name}/versions/{version} deletes
a version that never ran, for its name's owner or an admin."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import HELLO, Api
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.worker.heartbeat import Heartbeat

TYPO = {**HELLO, "steps": [{"name": "a", "agent": "echo"}, {"name": "b", "agent": "ecko"}]}


def delete(api: Api, path: str, user: str = "alice") -> Any:
    return api.client.delete(f"/api/v1{path}", headers=api.headers(user))


def test_an_agent_no_live_worker_serves_is_refused_unless_allowed(api: Api) -> None:
    Heartbeat(api.harness.store, ["echo", "score"], ["wfe.steps"], interval=5.0).beat()
    refused = api.post("/workflows", json=TYPO)
    assert refused.status_code == 422
    body = refused.json()
    assert body["problems"] == [
        {"location": "steps[1] 'b'.agent", "message": "unknown agent 'ecko' (known: echo, score)"}
    ]
    assert "unknown agent 'ecko'" in body["detail"]
    assert api.get("/workflows/hello").status_code == 404  # nothing stored, nothing burned
    assert api.post("/workflows", json=HELLO).status_code == 201
    allowed = api.post(
        "/workflows", params={"allow_unknown_agents": "true"}, json={**TYPO, "version": "2.0.0"}
    )
    assert allowed.status_code == 201, allowed.text


def test_while_no_worker_is_live_agents_are_not_checked(api: Api) -> None:
    assert api.post("/workflows", json=TYPO).status_code == 201


def test_a_version_that_never_ran_is_deleted_and_may_be_registered_again(api: Api) -> None:
    api.register(TYPO)
    assert delete(api, "/workflows/hello/versions/1.0.0").status_code == 204
    assert api.get("/workflows/hello/versions/1.0.0").status_code == 404
    assert api.get("/workflows").json() == []
    again = api.register(HELLO)  # the same version, another body
    assert [s["agent"] for s in again["definition"]["steps"]] == ["echo", "echo"]
    assert delete(api, "/workflows/hello/versions/9.9.9").status_code == 404


def test_a_version_that_ran_is_not_deleted(api: Api) -> None:
    api.register(HELLO)
    execution = api.start("hello")
    refused = delete(api, "/workflows/hello/versions/1.0.0")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"hello 1.0.0 has run (execution {execution}): a version that ran cannot be deleted"
    )
    assert api.get("/workflows/hello/versions/1.0.0").status_code == 200


def test_only_the_owner_or_an_admin_deletes_a_version(api: Api) -> None:
    api.register(HELLO)
    assert delete(api, "/workflows/hello/versions/1.0.0", "bob").status_code == 404  # not his to see
    assert delete(api, "/workflows/hello/versions/1.0.0", "vic").status_code == 403  # a viewer
    api.harness.store.register_workflow(WorkflowBuilder("deployed").agent("a", "echo").build())
    denied = delete(api, "/workflows/deployed/versions/1.0.0")  # the deployment's: seen, not hers
    assert denied.status_code == 403 and "belongs to the deployment" in denied.json()["detail"]
    assert delete(api, "/workflows/deployed/versions/1.0.0", "root").status_code == 204
    assert delete(api, "/workflows/hello/versions/1.0.0", "root").status_code == 204
    assert api.get("/workflows", "root").json() == []
