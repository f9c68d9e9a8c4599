"""GET /schedules/{name} lists the fire times that started nothing, with why."""

from __future__ import annotations

from tests.api.conftest import HELLO, Api


def test_a_skipped_fire_time_is_listed_with_why(api: Api) -> None:
    api.register(HELLO)
    made = api.post("/schedules", json={"name": "poll", "workflow": "hello", "every": 30})
    assert made.status_code == 201, made.text
    assert made.json()["skipped_fires"] == []
    running = api.post("/schedules/poll/trigger").json()["execution_id"]
    api.harness.clock.advance(1)  # (a fire time is handled once: the next trigger is another)
    assert api.post("/schedules/poll/trigger").json()["action"] == "skipped"
    (skipped,) = api.get("/schedules/poll").json()["skipped_fires"]
    assert skipped["action"] == "skipped" and skipped["count"] == 1
    assert skipped["reason"] == f"overlap skip: the previous execution ({running}) still ran"
    assert skipped["scheduled_at"] == skipped["until"]
