"""Maps and children through the REST API: registration refuses unknown children, a map's
progress and children are in the execution, logs filter by item, listings by parent."""

from __future__ import annotations

from tests.api.conftest import Api

CHILD = {"name": "kid", "version": "1.0.0", "steps": [{"name": "k", "agent": "echo"}]}
FAMILY = {
    "name": "family",
    "version": "1.0.0",
    "steps": [
        {"name": "list", "agent": "lister"},
        {"name": "each", "type": "map", "items": "steps.list.items", "agent": "echo"},
        {
            "name": "kids",
            "type": "map",
            "items": "steps.list.items",
            "workflow": "kid",
            "input": {"i": "item"},
        },
        {"name": "one", "type": "workflow", "workflow": "kid"},
    ],
}


def test_a_definition_naming_an_unregistered_child_is_refused_with_its_location(api: Api) -> None:
    response = api.post("/workflows", json=FAMILY)
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert [p["location"] for p in problems] == ["steps[2] 'kids'.workflow", "steps[3] 'one'.workflow"]
    assert "unknown workflow 'kid'" in problems[0]["message"]
    assert api.get("/workflows/family").status_code == 404  # nothing was stored


def test_an_operator_cannot_name_another_users_workflow_as_a_child(api: Api) -> None:
    api.register(CHILD, user="bob")
    response = api.post("/workflows", json=FAMILY)  # alice cannot see bob's kid
    assert response.status_code == 422


def test_map_progress_children_logs_by_item_and_listing_by_parent(api: Api) -> None:
    api.register(CHILD)
    api.register(FAMILY)
    api.harness.agent("lister", lambda ctx: {"items": ["x", "y", "z"]})
    api.harness.agent("echo")
    execution = api.start("family")
    api.harness.work()
    detail = api.get(f"/executions/{execution}").json()
    assert detail["status"] == "completed"
    steps = {step["name"]: step for step in detail["steps"]}
    assert steps["each"]["items"] == {
        "total": 3,
        "done": 3,
        "failed": 0,
        "running": 0,
        "pending": 0,
        "cancelled": 0,
    }
    assert steps["list"]["items"] is None
    children = detail["children"]
    assert sorted((c["step"], c["index"]) for c in children if c["step"] == "kids") == [
        ("kids", 0),
        ("kids", 1),
        ("kids", 2),
    ]
    assert [c["index"] for c in children if c["step"] == "one"] == [None]
    listed = api.get("/executions", params={"parent": execution}).json()
    assert listed["total"] == 4
    assert {item["workflow"] for item in listed["items"]} == {"kid"}
    assert all(item["parent_execution_id"] == execution for item in listed["items"])
    child = api.get(f"/executions/{children[0]['execution_id']}").json()
    assert child["parent_execution_id"] == execution and child["children"] == []
    logs = api.get(f"/executions/{execution}/logs", params={"step_name": "each", "index": 1}).json()
    assert [(entry["step_name"], entry["index"], entry["status"]) for entry in logs] == [
        ("each", 1, "succeeded")
    ]
    assert api.get(f"/executions/{execution}/logs", params={"index": -1}).status_code == 422
    bob_sees = api.get("/executions", params={"parent": execution}, user="bob").json()
    assert bob_sees["total"] == 0  # another user's children are not listed
