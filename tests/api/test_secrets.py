"""Secrets end to end in process, on both databases: a secret passed through three steps is in
the agents' hands and nowhere else (no table, view, page, event, error or log line holds it);
a condition reads it; a human task's write-only field is sealed; starting without a key, and
a path that can never exist, are refused; a purge's archive masks them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.api.conftest import Api
from tests.api.test_monitor_pages import signed_in
from workflow_engine.agents import AgentContext
from workflow_engine.core.secrets import SEALED
from workflow_engine.errors import TransientError
from workflow_engine.retention import Purger
from workflow_engine.secrets import new_key
from workflow_engine.store import schema

SECRET = "sk-live-5up3r-s3cr3t"
KEY = new_key()
VAULT = {
    "name": "vault",
    "version": "1.0.0",
    "secrets": ["steps.fetch.token"],
    "input_schema": {
        "type": "object",
        "required": ["api_key"],
        "properties": {"api_key": {"type": "string", "writeOnly": True}, "customer": {"type": "string"}},
    },
    "steps": [
        {"name": "fetch", "agent": "fetch"},
        {"name": "use", "agent": "use"},
        {"name": "last", "agent": "last", "retry": {"max_attempts": 3, "initial_delay": 1}},
        {
            "name": "approve",
            "type": "human",
            "input_schema": {
                "type": "object",
                "properties": {"pin": {"type": "string", "writeOnly": True}, "note": {"type": "string"}},
            },
        },
    ],
    "edges": [
        {"from": "fetch", "to": "use", "when": "len(steps.fetch.token) > 5"},  # reads it opened
        {"from": "use", "to": "last"},
        {"from": "last", "to": "approve"},
    ],
}


def agents(api: Api, seen: list[Any]) -> None:
    def fetch(ctx: AgentContext) -> dict[str, Any]:
        seen.append(ctx.input["api_key"])
        ctx.log.info("calling the vendor with %s", ctx.input["api_key"])
        return {"token": f"tok-{ctx.input['api_key']}", "customer": ctx.input["customer"]}

    def use(ctx: AgentContext) -> dict[str, Any]:
        seen.append(ctx.steps["fetch"]["token"])
        return {"echo": ctx.input["api_key"], "size": len(ctx.steps["fetch"]["token"])}  # not declared

    def last(ctx: AgentContext) -> dict[str, Any]:
        seen.append(ctx.input["api_key"])
        if ctx.attempt == 1:
            raise TransientError(f"the vendor refused key {ctx.input['api_key']}")
        return {"done": True}

    for name, function in (("fetch", fetch), ("use", use), ("last", last)):
        api.harness.agent(name, function)


def everything_stored(api: Api) -> str:
    """Every row of every table, as text."""
    with api.harness.store.engine.connect() as conn:
        return "\n".join(
            repr(tuple(row))
            for table in schema.metadata.sorted_tables
            for row in conn.execute(sa.select(table))
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_secret_passed_through_three_steps_is_nowhere_but_in_the_agents_hands(
    api_factory: Callable[..., Api], backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = api_factory(backend, encryption_keys=KEY)
    seen: list[Any] = []
    agents(api, seen)
    api.register(VAULT)
    caplog.set_level(logging.DEBUG)
    execution = api.start("vault", input_data={"api_key": SECRET, "customer": "ann"})
    api.harness.work()
    assert api.harness.statuses(execution) == {
        "fetch": "succeeded",
        "use": "succeeded",
        "last": "succeeded",
        "approve": "waiting",
    }
    assert seen == [SECRET, f"tok-{SECRET}", SECRET, SECRET]  # the agents had it, opened
    client, csrf = signed_in(api, "alice")
    done = client.post(
        f"/ui/human-tasks/{execution}/approve",
        data={"csrf": csrf, "pin": "9182", "note": "fine"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert api.harness.statuses(execution)["approve"] == "succeeded"

    surfaces = {
        "the tables": everything_stored(api),
        "the log lines": caplog.text,
        "the execution": api.get(f"/executions/{execution}").text,
        "its steps' logs": api.get(f"/executions/{execution}/logs").text,
        "its events stream": api.get(f"/executions/{execution}/events").text,
        "the error groups": api.get("/errors").text,
        "the listing": api.get("/executions").text,
        "the audit": api.get("/audit", "root").text,
        "the metrics": api.get("/monitoring/metrics").text,
        "the monitor's page": client.get(f"/ui/executions/{execution}").text,
        "the monitor's errors": client.get("/ui/errors").text,
    }
    for run in api.harness.runs(execution):
        surfaces[f"attempt {run.id}"] = client.get(f"/ui/executions/{execution}/attempts/{run.id}").text
    for plain in (SECRET, "9182"):
        leaks = [name for name, text in surfaces.items() if plain in text]
        assert leaks == [], f"{plain} is in {leaks}"
    view = api.get(f"/executions/{execution}").json()
    assert view["input_data"] == {"api_key": "***", "customer": "ann"}
    attempts = api.get(f"/executions/{execution}/logs").json()
    outputs = {e["step_name"]: e["output_data"] for e in attempts if e["status"] == "succeeded"}
    assert outputs["fetch"] == {"token": "***", "customer": "ann"}
    assert outputs["use"] == {"echo": "***", "size": len(f"tok-{SECRET}")}  # handed on: sealed too
    assert outputs["approve"] == {"pin": "***", "note": "fine"}
    assert [e["error_message"] for e in attempts if e["step_name"] == "last"] == [
        "the vendor refused key ***",
        None,
    ]
    assert "calling the vendor with ***" in caplog.text
    api.harness.work()
    assert api.get(f"/executions/{execution}").json()["status"] == "completed"
    api.harness.clock.advance(2 * 86400)  # then an archive of its purge masks the secrets too
    archive = io.StringIO()
    assert Purger(api.harness.store).purge(timedelta(days=1), archive=archive).executions == 1
    assert SECRET not in archive.getvalue() and "9182" not in archive.getvalue()
    archived = json.loads(archive.getvalue())
    assert archived["execution"]["input"] == {"api_key": "***", "customer": "ann"}
    assert SEALED not in archive.getvalue()  # masked, not a sealed value kept for later


def test_a_workflow_with_secrets_does_not_start_without_a_key_and_a_bad_path_is_refused(api: Api) -> None:
    api.register(VAULT)
    refused = api.post("/executions", json={"workflow": "vault", "input_data": {"api_key": SECRET}})
    assert refused.status_code == 409, refused.text
    assert "WFE_ENCRYPTION_KEYS" in refused.json()["detail"]
    assert api.get("/executions").json()["total"] == 0  # nothing started
    bad = {**VAULT, "name": "bad", "secrets": ["steps.nowhere.token"]}
    answer = api.post("/workflows", json=bad)
    assert answer.status_code == 422, answer.text
    assert "names no step of this workflow" in answer.text


def test_a_schedules_secret_input_is_sealed_shown_masked_and_opened_for_its_executions_agents(
    api_factory: Callable[..., Api],
) -> None:
    api = api_factory(encryption_keys=KEY)
    seen: list[Any] = []
    agents(api, seen)
    api.register(VAULT)
    made = api.post(
        "/schedules",
        json={
            "name": "nightly",
            "workflow": "vault",
            "every": 3600,
            "input": {"api_key": SECRET, "customer": "c"},
        },
    )
    assert made.status_code == 201, made.text
    assert made.json()["input"] == {"api_key": "***", "customer": "c"}
    assert SECRET not in api.get("/schedules/nightly").text
    fired = api.post("/schedules/nightly/trigger").json()
    assert fired["execution_id"], fired
    api.harness.work()
    assert seen[0] == SECRET  # its execution's agent had it
    assert SECRET not in everything_stored(api)
