"""Schedule names are unique per owner, and a schedule's history is its own (by id): a name tells
nothing of another user's schedules, and a schedule made with a deleted one's name reads none of
the deleted one's changes or input. Routes look a name up among the caller's schedules; an admin
names another user's with ?owner=."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import HELLO, Api

pytestmark = pytest.mark.store


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, api_factory: Callable[..., Api]) -> Api:
    made = api_factory(request.param)
    made.register(HELLO, user="root")  # (an admin's workflow is not everyone's: each registers)
    made.register({**HELLO, "name": "hello-alice"})
    made.register({**HELLO, "name": "hello-bob"}, user="bob")
    return made


def delete(api: Api, path: str, user: str = "alice") -> Any:
    return api.client.delete(f"/api/v1{path}", headers=api.headers(user))


def create(api: Api, user: str, name: str = "nightly", **body: Any) -> Any:
    return api.post(
        "/schedules", user, json={"name": name, "workflow": f"hello-{user}", "every": 3600, **body}
    )


def test_a_schedule_made_with_a_deleted_one_s_name_reads_none_of_its_history(api: Api) -> None:
    assert create(api, "alice", input={"token": "alice-private-value"}).status_code == 201
    assert api.post("/schedules/nightly/pause").status_code == 200
    assert delete(api, "/schedules/nightly").status_code == 204
    assert create(api, "bob").status_code == 201
    shown = api.get("/schedules/nightly", "bob")
    assert shown.status_code == 200
    assert [(c["action"], c["actor"]) for c in shown.json()["changes"]] == [("created", "bob")]
    assert "alice-private-value" not in shown.text and "alice" not in shown.text.replace("hello-bob", "")
    # nor does alice, making it again, find her deleted schedule's history
    assert create(api, "alice").status_code == 201
    again = api.get("/schedules/nightly", "alice").json()
    assert [(c["action"], c["actor"]) for c in again["changes"]] == [("created", "alice")]


def test_names_are_unique_per_owner_and_tell_nothing_of_other_users(api: Api) -> None:
    assert create(api, "alice").status_code == 201
    assert create(api, "bob").status_code == 201  # the same name: no 409 that would tell bob hers exists
    again = create(api, "alice")
    assert again.status_code == 409 and "you have a schedule named 'nightly'" in again.json()["detail"]
    assert api.post("/schedules/nightly/pause", "bob").json()["paused"] is True
    alices = api.get("/schedules/nightly").json()
    assert alices["paused"] is False and alices["workflow"] == "hello-alice" and alices["owner"] == "alice"
    assert api.get("/schedules/nightly", "bob").json()["workflow"] == "hello-bob"
    assert [s["workflow"] for s in api.get("/schedules", "bob").json()] == ["hello-bob"]


def test_an_admin_names_another_user_s_schedule_with_owner(api: Api) -> None:
    assert create(api, "alice").status_code == 201
    assert create(api, "bob").status_code == 201
    everyone = api.get("/schedules", "root").json()
    assert sorted((s["name"], s["owner"]) for s in everyone) == [("nightly", "alice"), ("nightly", "bob")]
    assert api.get("/schedules/nightly", "root").status_code == 404  # root has none of that name
    assert api.get("/schedules/nightly", "root", params={"owner": "bob"}).json()["workflow"] == "hello-bob"
    paused = api.post("/schedules/nightly/pause", "root", params={"owner": "alice"})
    assert paused.status_code == 200 and paused.json()["owner"] == "alice"
    assert api.get("/schedules/nightly").json()["paused"] is True
    assert api.get("/schedules/nightly", "bob").json()["paused"] is False
    assert delete(api, "/schedules/nightly?owner=bob", "root").status_code == 204
    assert api.get("/schedules/nightly", "bob").status_code == 404
    assert api.get("/schedules/nightly").status_code == 200
    unknown = api.get("/schedules/nightly", "root", params={"owner": "nobody"})
    assert unknown.status_code == 404 and "detail" in unknown.json()


def test_an_operator_cannot_name_another_owner(api: Api) -> None:
    assert create(api, "alice").status_code == 201
    for user in ("bob", "vic"):
        found = api.get("/schedules/nightly", user, params={"owner": "alice"})
        assert found.status_code == 404
    assert api.post("/schedules/nightly/pause", "bob", params={"owner": "alice"}).status_code == 404
    assert api.get("/schedules/nightly", "alice", params={"owner": "alice"}).status_code == 200
