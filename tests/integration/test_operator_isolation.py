"""What one operator account can do to everyone else, over HTTP against a running `wfe api` (real
worker, coordinator, Redis and PostgreSQL): schemas that would fetch URLs, schedules that would
share a name and its history, steps that would run on the engine's own queues, names with a
trailing newline, listings that would read every document."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.test_api_server import Server, server
from tests.support.listener import Listener
from workflow_engine.definitions import schemas
from workflow_engine.store import schema as t

__all__ = ["server"]  # the module's own `wfe api`, cluster and users (alice, bob, vic, root)
pytestmark = [pytest.mark.slow, pytest.mark.long]


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as listening:
        yield listening


def echo(name: str, version: str = "1.0.0", **fields: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "steps": [{"name": "a", "agent": "echo"}], **fields}


def store_directly(server: Server, document: dict[str, Any], owner: str) -> None:
    """A version written straight into the database, as one registered before a rule was made."""
    store = server.cluster.engine.store
    owner_id = store.get_user(owner).id
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    with store.transaction() as tx:
        tx.execute(
            sa.insert(t.workflows).values(
                name=document["name"],
                version=document["version"],
                description="",
                document=document,
                digest=digest,
                created_by=owner_id,
                created_at=tx.now,
            )
        )


# High 1: a schema's $ref fetches nothing


def test_registering_a_schema_that_refers_to_a_url_is_refused_and_fetches_nothing(
    server: Server, listener: Listener
) -> None:
    remote = {"$ref": f"{listener.url}/schema.json"}
    bodies = [
        echo("ref-input", input_schema=remote),
        echo("ref-file", input_schema={"$ref": "file:///etc/passwd"}),
        {
            "name": "ref-human",
            "version": "1.0.0",
            "steps": [{"name": "approve", "type": "human", "input_schema": remote}],
        },
        {
            "name": "ref-wait",
            "version": "1.0.0",
            "steps": [{"name": "paid", "type": "wait", "input_schema": {"properties": {"x": remote}}}],
        },
    ]
    answers = [server.post("/workflows", "alice", json=body) for body in bodies]
    assert listener.requests == 0
    assert [a.status_code for a in answers] == [422] * len(bodies), [a.text for a in answers]
    assert all("refers outside the schema" in a.text for a in answers)


def test_a_stored_version_whose_schema_refers_to_a_url_starts_nothing_and_fetches_nothing(
    server: Server, listener: Listener
) -> None:
    server.register(echo("stored-ref"))  # (alice's name)
    stored = echo("stored-ref", "1.1.0", input_schema={"$ref": f"{listener.url}/schema.json"})
    store_directly(server, stored, "alice")
    started = server.post("/executions", "alice", json={"workflow": "stored-ref", "version": "1.1.0"})
    assert listener.requests == 0
    assert started.status_code == 422, started.text
    assert "refers outside the schema" in started.json()["detail"]


# 7: a step's queue is never one of the engine's own


@pytest.mark.parametrize(
    ("queue", "says"),
    [
        ("coordinator", "reserved for the engine"),  # <prefix>.coordinator
        ("steps", "reserved for the engine"),  # <prefix>.steps
        ("intake", "the intake queue"),  # this deployment's intake queue is <prefix>.intake
        ("{prefix}.gpu", "the engine's prefix"),
    ],
)
def test_a_step_routed_to_the_engine_s_own_queue_is_refused(server: Server, queue: str, says: str) -> None:
    settings = server.cluster.settings
    assert settings.intake_queue == f"{settings.queue_prefix}.intake"
    step = {"name": "a", "agent": "echo", "queue": queue.format(prefix=settings.queue_prefix)}
    body = {"name": f"queued-{queue.split('.')[-1]}", "version": "1.0.0", "steps": [step]}
    refused = server.post("/workflows", "alice", json=body)
    assert refused.status_code == 422, refused.text
    assert says in refused.json()["detail"] and "queue" in refused.json()["detail"]
    assert server.get(f"/workflows/{body['name']}", "alice").status_code == 404


# L5: a trailing newline is no part of a name


def test_names_with_a_trailing_newline_are_refused(server: Server) -> None:
    server.register(echo("newline-ok"))
    bodies = [
        ("/workflows", echo("newline\n")),
        ("/workflows", {**echo("newline"), "steps": [{"name": "a\n", "agent": "echo"}]}),
        ("/workflows", {**echo("newline"), "steps": [{"name": "a", "agent": "echo\n"}]}),
        ("/workflows", {**echo("newline"), "steps": [{"name": "a", "agent": "echo", "queue": "gpu\n"}]}),
        ("/schedules", {"name": "nightly\n", "workflow": "newline-ok", "every": 60}),
    ]
    for path, body in bodies:
        refused = server.post(path, "alice", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert "detail" in refused.json()


# 2(a) and L6: a schedule's name is its owner's, and its history its own


def test_a_schedule_made_with_another_user_s_deleted_name_reads_none_of_its_history(server: Server) -> None:
    server.register(echo("sched-alice"))
    server.register(echo("sched-bob"), user="bob")
    body = {"name": "shared-name", "every": 3600}
    made = server.post(
        "/schedules", "alice", json={**body, "workflow": "sched-alice", "input": {"k": "alice-v"}}
    )
    assert made.status_code == 201, made.text
    # bob may use the name as well: a 409 would tell him alice has one
    assert server.post("/schedules", "bob", json={**body, "workflow": "sched-bob"}).status_code == 201
    assert server.http.delete("/api/v1/schedules/shared-name", headers=server.auth("bob")).status_code == 204
    assert server.get("/schedules/shared-name", "alice").json()["workflow"] == "sched-alice"
    assert server.post("/schedules/shared-name/pause", "alice").status_code == 200
    deleted = server.http.delete("/api/v1/schedules/shared-name", headers=server.auth("alice"))
    assert deleted.status_code == 204
    assert server.post("/schedules", "bob", json={**body, "workflow": "sched-bob"}).status_code == 201
    shown = server.get("/schedules/shared-name", "bob")
    assert [(c["action"], c["actor"]) for c in shown.json()["changes"]] == [("created", "bob")]
    assert "alice" not in shown.text
    assert server.get("/schedules/shared-name", "root", params={"owner": "bob"}).json()["owner"] == "bob"


# L1: a schema check has a bounded size


def test_a_schema_too_large_or_data_too_large_to_check_is_refused(server: Server) -> None:
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(6000)}}
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(20):
        deep = {"type": "object", "properties": {"a": deep}}
    long_pattern = {"type": "object", "properties": {"x": {"pattern": "a" * 1001}}}
    for schema, says in (
        (wide, f"more than {schemas.MAX_SCHEMA_KEYWORDS} keywords"),
        (deep, f"nested more than {schemas.MAX_SCHEMA_DEPTH} levels"),
        (long_pattern, f"longer than {schemas.MAX_PATTERN_LENGTH} characters"),
    ):
        refused = server.post("/workflows", "alice", json=echo("too-costly", input_schema=schema))
        assert refused.status_code == 422 and says in refused.json()["detail"], refused.text[:300]
    listed = {"type": "object", "properties": {"x": {"type": "array", "items": {"type": "integer"}}}}
    server.register(echo("checked-list", input_schema=listed))
    many = {"workflow": "checked-list", "input_data": {"x": [0] * schemas.MAX_CHECKED_VALUES}}
    refused = server.post("/executions", "alice", json=many)
    assert refused.status_code == 422 and f"more than {schemas.MAX_CHECKED_VALUES} values" in refused.text
    server.start("checked-list", input_data={"x": [0] * 1000})
