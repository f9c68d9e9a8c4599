"""POST /executions/bulk/{verb} and GET /executions?ids=: bulk actions by filter or ids, each
execution in its own recorded transition, isolated between users, dry runs changing nothing."""

from __future__ import annotations

from tests.api.conftest import APPROVAL, Api

BOBS = {**APPROVAL, "name": "approval-b"}  # (a workflow belongs to whoever registered it)


def waiting(api: Api, user: str, count: int) -> list[str]:
    api.harness.agent("echo")
    ids = [api.start("approval" if user == "alice" else "approval-b", user) for _ in range(count)]
    api.harness.work()
    return ids


def statuses(api: Api, ids: list[str], user: str = "root") -> dict[str, str]:
    page = api.get("/executions", user, params={"ids": ",".join(ids)}).json()
    return {item["execution_id"]: item["status"] for item in page["items"]}


def test_an_operators_bulk_cancel_changes_only_their_own_and_records_each(api: Api) -> None:
    api.register(APPROVAL)
    api.register(BOBS, user="bob")
    mine, theirs = waiting(api, "alice", 3), waiting(api, "bob", 2)
    assert set(statuses(api, mine + theirs).values()) == {"waiting"}
    dry = api.post("/executions/bulk/cancel", json={"workflow": "approval", "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json() == {"matched": 3, "changed": 0, "refused": 0, "would_change": 3, "truncated": False}
    assert set(statuses(api, mine).values()) == {"waiting"}  # a dry run changes nothing
    done = api.post("/executions/bulk/cancel", json={"status": "waiting", "reason": "bad batch"})
    assert done.json() == {"matched": 3, "changed": 3, "refused": 0, "would_change": None, "truncated": False}
    assert set(statuses(api, mine).values()) == {"cancelled"}
    assert set(statuses(api, theirs).values()) == {"waiting"}  # another user's are never matched
    events = api.get(f"/executions/{mine[0]}?include_events=true").json()["events"]
    cancelled = [e for e in events if e["to_status"] == "cancelled" and e["step_name"] is None]
    assert [(e["actor"], e["reason"]) for e in cancelled] == [("alice", "bad batch")]
    again = api.post("/executions/bulk/cancel", json={"ids": mine})
    assert again.json()["matched"] == 3 and again.json()["refused"] == 3  # ended: refused, counted
    # bob's ids named by alice match nothing; only bob (or an admin) may act on them
    assert api.post("/executions/bulk/cancel", json={"ids": theirs}).json()["matched"] == 0
    assert api.get("/executions", params={"ids": ",".join(theirs)}).json()["items"] == []


def test_pause_and_resume_in_bulk_and_an_admin_acts_on_everyone(api: Api) -> None:
    api.register(APPROVAL)
    api.register(BOBS, user="bob")
    mine, theirs = waiting(api, "alice", 2), waiting(api, "bob", 1)
    paused = api.post("/executions/bulk/pause", user="root", json={"status": "waiting"})
    assert paused.json()["changed"] == 3
    assert set(statuses(api, mine + theirs).values()) == {"paused"}
    resumed = api.post("/executions/bulk/resume", json={"ids": [*mine, "no-such-id"]})
    assert resumed.json()["matched"] == 2 and resumed.json()["changed"] == 2
    assert statuses(api, theirs)[theirs[0]] == "paused"


def test_bad_bulk_requests_are_refused_and_change_nothing(api: Api) -> None:
    api.register(APPROVAL)
    mine = waiting(api, "alice", 1)
    for path, body, code in [
        ("/executions/bulk/cancel", {}, 422),  # no filter: never "all"
        ("/executions/bulk/explode", {"workflow": "approval"}, 422),
        ("/executions/bulk/cancel", {"status": "sleeping"}, 422),
        ("/executions/bulk/cancel", {"workflow": "approval", "surprise": 1}, 422),
    ]:
        response = api.post(path, json=body)
        assert response.status_code == code, (path, body, response.text)
    assert api.post("/executions/bulk/cancel", user="vic", json={"workflow": "approval"}).status_code == 403
    assert statuses(api, mine)[mine[0]] == "waiting"
