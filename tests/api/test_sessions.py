"""Refresh tokens are spent once (a refresh returns a new one, the old one is refused, and
presented again revokes every token of its login), a logout revokes one, and failed logins and
refused requests are recorded for admins (GET /audit)."""

from __future__ import annotations

from tests.api.conftest import PASSWORD, Api


def login(api: Api, user: str = "alice") -> dict[str, str]:
    response = api.client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    pair: dict[str, str] = response.json()
    return pair


def refresh(api: Api, token: str) -> int:
    return int(api.client.post("/api/v1/auth/refresh", json={"refresh_token": token}).status_code)


def test_a_refresh_token_is_spent_by_its_refresh_and_the_new_one_works(api: Api) -> None:
    first = login(api)
    response = api.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.json()["refresh_token"]
    assert second != first["refresh_token"]
    reused = api.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and "already used or revoked" in reused.json()["detail"]
    # a spent token that comes back (stolen) revokes its whole login: the new one goes too
    assert refresh(api, second) == 401
    assert refresh(api, login(api)["refresh_token"]) == 200  # another login goes on


def test_a_logout_revokes_a_refresh_token(api: Api) -> None:
    pair = login(api)
    out = api.client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert out.status_code == 204
    assert refresh(api, pair["refresh_token"]) == 401
    again = api.client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 204  # revoking twice changes nothing
    bad = api.client.post("/api/v1/auth/logout", json={"refresh_token": "not-a-token"})
    assert bad.status_code == 401
    assert refresh(api, login(api)["refresh_token"]) == 200  # other sessions go on


def test_failed_logins_and_refused_requests_are_listed_for_admins(api: Api) -> None:
    assert (
        api.client.post("/api/v1/auth/token", json={"username": "alice", "password": "nope"}).status_code
        == 401
    )
    assert (
        api.post("/schedules", user="vic", json={"name": "x", "workflow": "w", "every": 5}).status_code == 403
    )
    stranger = api.client.get("/api/v1/executions", headers={"Authorization": "Bearer forged"})
    assert stranger.status_code == 401
    assert api.get("/audit", user="alice").status_code == 403
    listed = api.get("/audit", user="root")
    assert listed.status_code == 200
    rows = [(r["username"], r["route"], r["status"]) for r in listed.json()]
    # newest first; the operator's refused look at the audit is itself recorded
    assert rows[:4] == [
        ("alice", "GET /api/v1/audit", 403),
        (None, "GET /api/v1/executions", 401),
        ("vic", "POST /api/v1/schedules", 403),
        ("alice", "POST /api/v1/auth/token", 401),
    ]
    assert all(r["address"] for r in listed.json())
