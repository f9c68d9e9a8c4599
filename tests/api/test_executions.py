"""Execution routes: start, list, read, logs, control, human tasks, live events, limits."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.api.conftest import APPROVAL, HELLO, TYPED, Api


def test_start_returns_202_with_the_id_and_the_execution_can_be_read(api: Api) -> None:
    api.register(HELLO)
    response = api.post(
        "/executions", json={"workflow": "hello", "input_data": {"x": 1}, "metadata": {"m": 2}}
    )
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"execution_id", "status"} and body["status"] == "running"
    api.harness.agent("echo")
    api.harness.work()
    detail = api.get(f"/executions/{body['execution_id']}", params={"include_events": "true"}).json()
    assert detail["status"] == "completed" and detail["percent_complete"] == 100.0
    assert detail["input_data"] == {"x": 1} and detail["metadata"] == {"m": 2}
    assert [s["name"] for s in detail["steps"]] == ["a", "b"]
    assert (
        detail["events"][0]["to_status"] == "initialized" and detail["events"][-1]["to_status"] == "completed"
    )
    assert (
        api.get(f"/executions/{body['execution_id']}", params={"include_steps": "false"}).json()["steps"]
        is None
    )


def test_execute_by_workflow_name_is_the_same_start(api: Api) -> None:
    api.register(HELLO)
    response = api.post("/workflows/hello/execute", json={"input_data": {}, "idempotency_key": "k1"})
    again = api.post("/workflows/hello/execute", json={"input_data": {}, "idempotency_key": "k1"})
    assert response.status_code == again.status_code == 202
    assert response.json()["execution_id"] == again.json()["execution_id"]


def test_input_is_checked_against_the_schema_and_invalid_input_creates_nothing(api: Api) -> None:
    api.register(TYPED)
    response = api.post("/executions", json={"workflow": "typed", "input_data": {"project_id": 7}})
    assert response.status_code == 422
    assert response.json()["problems"] == [{"location": "project_id", "message": "7 is not of type 'string'"}]
    assert api.get("/executions").json()["total"] == 0


def test_unknown_workflow_is_404_and_bad_bodies_are_422(api: Api) -> None:
    assert api.post("/executions", json={"workflow": "nope"}).status_code == 404
    assert api.post("/executions", json={"workflow": "hello", "mode": "turbo"}).status_code == 422
    assert api.post("/executions", json={"workflow": "hello", "surprise": 1}).status_code == 422
    assert api.post("/executions", json={"input_data": {}}).status_code == 422
    malformed = api.post(
        "/executions", content=b'{"workflow": ', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422 and "detail" in malformed.json()


def test_invalid_definitions_are_422_with_every_problem_and_versions_are_immutable(api: Api) -> None:
    bad = {"name": "Bad", "steps": [{"name": "a"}], "edges": [{"from": "a", "to": "b"}]}
    response = api.post("/workflows", json=bad)
    assert response.status_code == 422
    assert len(response.json()["problems"]) == 3
    api.register(HELLO)
    changed = {**HELLO, "description": "changed"}
    assert api.post("/workflows", json=changed).status_code == 409


def test_workflows_are_listed_with_versions_newest_first(api: Api) -> None:
    api.register(HELLO)
    api.register({**HELLO, "version": "1.10.0"})
    api.register({**HELLO, "version": "1.2.0"})
    listed = api.get("/workflows").json()
    assert listed == [
        {
            "name": "hello",
            "description": "",
            "latest_version": "1.10.0",
            "versions": ["1.10.0", "1.2.0", "1.0.0"],
            "definition": None,
        }
    ]
    assert api.get("/workflows/hello").json()["definition"]["version"] == "1.10.0"
    assert api.get("/workflows/hello/versions/1.2.0").json()["version"] == "1.2.0"
    assert api.get("/workflows/hello/versions/9.9.9").status_code == 404


def test_list_paginates_newest_first_with_filters(api: Api) -> None:
    api.register(HELLO)
    api.register({**HELLO, "name": "other"})
    ids = []
    for _ in range(5):
        ids.append(api.start("hello"))
        api.harness.clock.advance(1)
    api.start("other")
    page = api.get("/executions", params={"workflow": "hello", "limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [item["execution_id"] for item in page["items"]] == [ids[3], ids[2]]
    assert api.get("/executions", params={"status": "running"}).json()["total"] == 6
    assert api.get("/executions", params={"status": "completed"}).json()["total"] == 0
    start = api.harness.clock.now() - timedelta(seconds=2.5)
    recent = api.get("/executions", params={"created_after": start.isoformat()}).json()
    assert recent["total"] == 3
    for bad in (
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"status": "sleeping"},
        {"created_after": "yesterday"},
    ):
        assert api.get("/executions", params=bad).status_code == 422, bad


def test_logs_are_chronological_and_filtered(api: Api) -> None:
    api.register(
        {
            "name": "flaky",
            "steps": [
                {"name": "a", "agent": "echo"},
                {"name": "b", "agent": "flaky", "retry": {"initial_delay": 0}},
            ],
        }
    )
    api.harness.agent("echo")
    api.harness.agent(
        "flaky", lambda ctx: {} if ctx.attempt > 1 else (_ for _ in ()).throw(ConnectionError("x"))
    )
    execution = api.start("flaky")
    api.harness.work()
    logs = api.get(f"/executions/{execution}/logs").json()
    assert [(entry["step_name"], entry["attempt"]) for entry in logs] == [("a", 1), ("b", 1), ("b", 2)]
    assert all(entry["duration_ms"] is not None for entry in logs)
    errors = api.get(f"/executions/{execution}/logs", params={"has_error": "true"}).json()
    assert [(e["step_name"], e["error_type"]) for e in errors] == [("b", "connection")]
    assert len(api.get(f"/executions/{execution}/logs", params={"step_name": "b", "limit": 1}).json()) == 1
    assert api.get(f"/executions/{execution}/logs", params={"limit": 1001}).status_code == 422
    assert api.get(f"/executions/{execution}/logs", params={"step_type": "robot"}).status_code == 422


def test_control_routes_apply_and_refuse_what_does_not_apply(api: Api) -> None:
    api.register(HELLO)
    execution = api.start("hello")
    assert api.post(f"/executions/{execution}/pause").json()["status"] == "paused"
    assert api.post(f"/executions/{execution}/resume").json()["status"] == "running"
    assert api.post(f"/executions/{execution}/retry", json={}).status_code == 409
    assert api.post(f"/executions/{execution}/next-step").status_code == 409
    cancelled = api.post(f"/executions/{execution}/cancel", json={"reason": "testing"})
    assert cancelled.json()["status"] == "cancelled"
    again = api.post(f"/executions/{execution}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    assert api.post("/executions/not-an-id/cancel").status_code == 404


def test_human_tasks_are_listed_and_completed_with_checked_data(api: Api) -> None:
    api.register(APPROVAL)
    api.harness.agent("echo")
    execution = api.start("approval")
    api.harness.work()
    tasks = api.get("/human-tasks").json()
    assert [(t["execution_id"], t["step"], t["kind"]) for t in tasks] == [(execution, "approve", "human")]
    assert tasks[0]["input_schema"]["required"] == ["approved"]
    assert api.get("/human-tasks", "bob").json() == []
    bad = api.post(f"/executions/{execution}/steps/approve/complete", json={"data": {"approved": "yes"}})
    assert bad.status_code == 422 and bad.json()["problems"][0]["location"] == "approved"
    assert api.get(f"/executions/{execution}").json()["status"] == "waiting"
    assert api.post(f"/executions/{execution}/steps/nope/complete", json={"data": {}}).status_code == 404
    done = api.post(f"/executions/{execution}/steps/approve/complete", json={"data": {"approved": True}})
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert api.get("/human-tasks").json() == []


# the stream's fallback poll, far longer than a live transition may take: only a notification
# (PostgreSQL's NOTIFY) brings the transitions in time
STREAM_POLL_SECONDS = 30.0


def test_events_stream_the_history_then_live_transitions_until_the_end(
    api_factory: Callable[..., Api],
) -> None:
    api = api_factory(events_poll_interval=STREAM_POLL_SECONDS)
    api.register(HELLO)
    api.harness.agent("echo")
    execution = api.start("hello")
    received: list[tuple[str, dict[str, object]]] = []
    worked: float | None = None
    with api.client.stream(
        "GET", f"/api/v1/executions/{execution}/events", headers=api.headers("alice")
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                received.append((kind, json.loads(line.split(":", 1)[1])))
                if worked is None:  # the stream has read the history: what runs now comes live
                    assert api.engine.notifier.listening.wait(5), "the API never listened for NOTIFY"
                    api.harness.work()
                    worked = time.monotonic()
    assert worked is not None
    late = time.monotonic() - worked
    assert late < STREAM_POLL_SECONDS / 6, f"the live transitions came {late:.1f} s after their commit"
    assert received[-1] == ("end", {"execution_id": execution, "status": "completed"})
    transitions = [data["to_status"] for kind, data in received if kind == "transition"]
    assert transitions[0] == "initialized" and transitions[-1] == "completed"
    assert len(transitions) == len(api.harness.store.events(execution))


def test_monitoring_metrics_json_and_prometheus(api_factory: object) -> None:
    api = api_factory(metrics_token="scrape-token-0123456789")  # type: ignore[operator]
    api.register(HELLO)
    api.harness.agent("echo")
    api.start("hello")
    api.harness.work()
    summary = api.get("/monitoring/metrics", params={"window": 3600}).json()
    assert summary["executions"] == {"total": 1, "by_status": {"completed": 1}}
    assert (
        set(summary["step_durations_ms"]) == {"echo"} and summary["step_durations_ms"]["echo"]["count"] == 2
    )
    assert api.get("/monitoring/metrics", params={"window": 0}).status_code == 422
    assert api.client.get("/metrics", headers=api.headers("alice")).status_code == 403
    scraped = api.client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert scraped.status_code == 200 and 'wfe_executions{status="completed"} 1.0' in scraped.text
    assert api.client.get("/api/v1/metrics", headers=api.headers("root")).status_code == 200
    assert api.client.get("/metrics").status_code == 401


def test_date_range_uses_aware_timestamps(api: Api) -> None:
    api.register(HELLO)
    api.start("hello")
    future = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
    assert api.get("/executions", params={"created_before": future}).json()["total"] == 1


def test_naive_timestamps_and_bare_dates_are_taken_as_utc(api: Api) -> None:
    api.register(HELLO)
    api.start("hello")  # created at the harness clock: 2030-01-01T00:00:00Z
    for params, total in (
        ({"created_after": "2029-12-31T23:59:59"}, 1),
        ({"created_after": "2030-01-01T00:00:01"}, 0),
        ({"created_before": "2030-01-01T00:00:01"}, 1),
        ({"created_after": "2029-12-31", "created_before": "2030-01-02"}, 1),
        ({"created_before": "2030-01-01"}, 0),
        ({"created_after": "2030-01-01T01:30:00+02:00"}, 1),
    ):
        response = api.get("/executions", params=params)
        assert response.status_code == 200, (params, response.text)
        assert response.json()["total"] == total, params
    unrepresentable = api.get("/executions", params={"created_after": "0001-01-01T00:00:00+14:00"})
    assert unrepresentable.status_code == 422 and "detail" in unrepresentable.json()


def test_a_last_event_id_that_is_no_63_bit_count_is_422_before_the_stream(
    api_factory: Callable[..., Api],
) -> None:
    api = api_factory(backend="sqlite")
    api.register(HELLO)
    api.harness.agent("echo")
    execution = api.start("hello")
    api.harness.work()
    for bad in (b"9" * 20, str(2**63).encode(), b"-1", "²".encode("latin-1"), b"abc"):
        response = api.get(f"/executions/{execution}/events", headers={"Last-Event-ID": bad})
        assert response.status_code == 422, (bad, response.text)
        assert "detail" in response.json()
    with api.client.stream(
        "GET",
        f"/api/v1/executions/{execution}/events",
        headers={**api.headers("alice"), "Last-Event-ID": str(2**63 - 1)},
    ) as stream:
        lines = [line for line in stream.iter_lines() if line.startswith("event:")]
    assert stream.status_code == 200 and lines == ["event: end"]
