"""/schedules: created, read, paused, resumed, triggered and deleted over HTTP; operators own
theirs (another user's answers 404), viewers only read, and bad requests change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.api.conftest import HELLO, TYPED, Api


def test_an_operator_manages_a_schedule_and_every_change_is_recorded(api: Api) -> None:
    api.register(HELLO)
    made = api.post(
        "/schedules",
        json={"name": "nightly", "workflow": "hello", "cron": "0 2 * * *", "timezone": "Europe/Paris"},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["paused"] is False and body["overlap"] == "skip" and len(body["next_fire_times"]) == 5
    first = datetime.fromisoformat(body["next_fire_times"][0])
    assert (first.hour, first.minute, first.utcoffset()) == (1, 0, timedelta(0))  # 02:00 in Paris, winter
    assert [s["name"] for s in api.get("/schedules").json()] == ["nightly"]
    paused = api.post("/schedules/nightly/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    fired = api.post("/schedules/nightly/trigger")
    assert fired.status_code == 202, fired.text
    started = fired.json()["execution_id"]
    execution = api.get(f"/executions/{started}").json()
    assert execution["metadata"]["schedule"] == "nightly" and "scheduled_at" in execution["metadata"]
    assert api.post("/schedules/nightly/resume").json()["paused"] is False
    shown = api.get("/schedules/nightly").json()
    assert [x["execution_id"] for x in shown["last_executions"]] == [started]
    assert [(c["action"], c["actor"]) for c in shown["changes"]] == [
        ("resumed", "alice"),
        ("triggered", "alice"),
        ("paused", "alice"),
        ("created", "alice"),
    ]
    assert api.client.delete("/api/v1/schedules/nightly", headers=api.headers("alice")).status_code == 204
    assert api.get("/schedules/nightly").status_code == 404
    assert api.get(f"/executions/{started}").status_code == 200  # its executions stay


def test_another_users_schedule_answers_404_and_an_admin_sees_all(api: Api) -> None:
    api.register(HELLO)
    assert api.post("/schedules", json={"name": "mine", "workflow": "hello", "every": 60}).status_code == 201
    for path in ("/schedules/mine/pause", "/schedules/mine/resume", "/schedules/mine/trigger"):
        assert api.post(path, user="bob").status_code == 404
    assert api.get("/schedules/mine", user="bob").status_code == 404
    assert api.client.delete("/api/v1/schedules/mine", headers=api.headers("bob")).status_code == 404
    assert api.get("/schedules", user="bob").json() == []
    assert [s["name"] for s in api.get("/schedules", user="root").json()] == ["mine"]
    refused = api.post("/schedules", user="vic", json={"name": "v", "workflow": "hello", "every": 60})
    assert refused.status_code == 403
    assert api.get("/schedules/mine").json()["changes"][0]["action"] == "created"  # nothing else


def test_bad_schedules_are_refused_with_a_detail_and_change_nothing(api: Api) -> None:
    api.register(TYPED)
    bad = [
        ({"name": "x", "workflow": "typed", "cron": "0 2 * *", "input": {"project_id": "p-1"}}, 422),
        (
            {
                "name": "x",
                "workflow": "typed",
                "every": 5,
                "timezone": "Nowhere/Else",
                "input": {"project_id": "p-1"},
            },
            422,
        ),
        ({"name": "x", "workflow": "typed", "every": 5, "overlap": "sometimes"}, 422),
        ({"name": "x", "workflow": "typed", "every": 5, "input": {"project_id": 1}}, 422),
        ({"name": "x", "workflow": "typed", "every": 5, "surprise": 1}, 422),
        ({"name": "x", "workflow": "nope", "every": 5}, 404),
    ]
    for body, status in bad:
        response = api.post("/schedules", json=body)
        assert response.status_code == status, (body, response.text)
        assert "detail" in response.json() or "error" in response.json()
    assert api.get("/schedules").json() == []
    ok = {"name": "x", "workflow": "typed", "every": 5, "input": {"project_id": "p-1"}}
    assert api.post("/schedules", json=ok).status_code == 201
    assert api.post("/schedules", json=ok).status_code == 409
