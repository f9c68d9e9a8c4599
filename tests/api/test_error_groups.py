"""GET /errors, GET /errors/{group}, POST /errors/{group}/retry over HTTP, per owner."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from workflow_engine.errors import TransientError

FLAKY = {"name": "flaky", "version": "1.0.0", "steps": [{"name": "call", "agent": "flaky-call"}]}
DOWN: dict[str, bool] = {"down": True}


def call(ctx: Any) -> dict[str, Any]:
    if DOWN["down"]:
        raise TransientError(f"upstream 503 for request {ctx.execution_id}", code="UPSTREAM")
    return {}


def test_error_groups_over_http_are_the_callers_and_a_group_retries(api: Api) -> None:
    DOWN["down"] = True
    api.register(FLAKY)
    api.register({**FLAKY, "name": "flaky-b"}, user="bob")
    api.harness.agent("flaky-call", call)
    mine = [api.start("flaky") for _ in range(2)]
    theirs = api.start("flaky-b", user="bob")
    api.harness.work()  # every attempt fails until retries run out
    listed = api.get("/errors")
    assert listed.status_code == 200, listed.text
    (group,) = listed.json()
    assert group["workflow"] == "flaky" and group["code"] == "UPSTREAM"
    assert group["message"] == "upstream <n> for request <id>" and sorted(group["execution_ids"]) == sorted(
        mine
    )
    assert group["count"] >= 2 and group["first_seen"] <= group["last_seen"]
    assert api.get(f"/errors/{group['group']}", user="bob").status_code == 404  # not bob's
    assert len(api.get("/errors", user="root").json()) == 2  # an admin's: everyone's
    assert api.get("/errors", params={"since": "soon"}).status_code == 422
    assert api.post(f"/errors/{group['group']}/retry", user="vic").status_code == 403
    DOWN["down"] = False
    retried = api.post(f"/errors/{group['group']}/retry")
    assert retried.status_code == 200 and retried.json()["changed"] == 2
    api.harness.work()
    assert {api.get(f"/executions/{e}").json()["status"] for e in mine} == {"completed"}
    assert api.get(f"/executions/{theirs}", user="bob").json()["status"] == "failed"
