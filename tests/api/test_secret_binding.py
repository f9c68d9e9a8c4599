"""Sealed values over the REST API: each is bound to its owner and its execution (or schedule),
so it opens nowhere else; none is taken from a client at any entry; a schedule's history shows
`***`; what an agent makes of a secret (inside a string, as a key, as a number, in an error's
type, code or message, in a checkpoint) and what a failing condition says of one are masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from tests.api.conftest import Api
from tests.api.test_monitor_pages import signed_in
from tests.api.test_secrets import SECRET, everything_stored
from workflow_engine.agents import AgentContext
from workflow_engine.core.secrets import SEALED
from workflow_engine.errors import InputError, TransientError
from workflow_engine.retention import Purger
from workflow_engine.secrets import Binding, KeyMissing, Keyring, new_key
from workflow_engine.store import schema as t
from workflow_engine.store import sealed

KEY = new_key()
PIN = 918273645  # a secret number
KEYED = {
    "name": "keyed",
    "version": "1.0.0",
    "input_schema": {
        "type": "object",
        "properties": {
            "api_key": {"type": "string", "writeOnly": True},
            "pin": {"type": "integer", "writeOnly": True},
            "customer": {"type": "string"},
        },
    },
    "steps": [
        {"name": "use", "agent": "use"},
        {"name": "approve", "type": "human", "input_schema": {"type": "object"}},
        {"name": "paid", "type": "wait", "signal": "payment"},
    ],
    "edges": [{"from": "use", "to": "approve"}, {"from": "use", "to": "paid"}],
}


@pytest.fixture
def keyed(api_factory: Callable[..., Api]) -> Api:
    api = api_factory(encryption_keys=KEY)
    api.register(KEYED)
    api.register({**KEYED, "name": "bobs"}, "bob")  # (a user sees the workflows he registered)
    return api


def stored_token(api: Api, execution_id: str, field: str = "api_key") -> str:
    with api.harness.store.engine.connect() as conn:
        value = conn.execute(
            sa.select(t.executions.c.input).where(t.executions.c.id == execution_id)
        ).scalar()
    token: str = value[field][SEALED]
    return token


def set_input(api: Api, execution_id: str, value: dict[str, Any]) -> None:
    """Put ``value`` in an execution's stored input behind the engine's back (as a copy of the
    database, a restored backup or a bug elsewhere could)."""
    with api.harness.store.engine.begin() as conn:
        conn.execute(sa.update(t.executions).where(t.executions.c.id == execution_id).values(input=value))


def owner(api: Api, user: str) -> int:
    return int(api.harness.store.get_user(user).id)


# none is taken from a client


def test_a_sealed_value_from_a_client_is_refused_at_every_entry_with_one_422(keyed: Api) -> None:
    alices = keyed.start("keyed", input_data={"api_key": SECRET, "customer": "ann"})
    forged = {SEALED: stored_token(keyed, alices)}  # alice's real token, sent by bob
    keyed.harness.agent("use", lambda ctx: {})
    bobs = keyed.start("bobs", "bob", input_data={"customer": "bob"})
    keyed.harness.work()
    refused = {
        "input": keyed.post(
            "/executions", "bob", json={"workflow": "bobs", "input_data": {"customer": forged}}
        ),
        "metadata": keyed.post("/executions", "bob", json={"workflow": "bobs", "metadata": {"m": [forged]}}),
        "signal data": keyed.post(f"/executions/{bobs}/signals/payment", "bob", json={"data": {"x": forged}}),
        "human data": keyed.post(f"/executions/{bobs}/steps/approve/complete", "bob", json={"data": forged}),
        "schedule input": keyed.post(
            "/schedules",
            "bob",
            json={"name": "forged", "workflow": "bobs", "every": 60, "input": {"customer": forged}},
        ),
    }
    for where, answer in refused.items():
        assert answer.status_code == 422, (where, answer.text)
        detail = answer.json()["detail"]
        assert isinstance(detail, str) and "'$sealed' is reserved" in detail, (where, detail)
    assert keyed.harness.statuses(bobs) == {"use": "succeeded", "approve": "waiting", "paid": "waiting"}
    assert keyed.get("/executions", "bob").json()["total"] == 1  # nothing else started
    assert keyed.get("/schedules", "bob").json() == []
    with pytest.raises(InputError, match="reserved"):  # the Python API: the same check
        keyed.engine.start("bobs", input_data={"customer": forged}, owner_id=owner(keyed, "bob"))


def test_a_sealed_value_moved_into_another_users_execution_opens_neither_for_its_agent_nor_its_condition(
    keyed: Api,
) -> None:
    seen: list[Any] = []
    keyed.harness.agent("use", lambda ctx: seen.append(ctx.input.get("customer")) or {})
    gated = {
        "name": "gated",
        "version": "1.0.0",
        "steps": [{"name": "first", "type": "human"}, {"name": "then", "agent": "use"}],
        "edges": [{"from": "first", "to": "then", "when": "input.customer == 'x'"}],
    }
    keyed.register(gated, "bob")
    alices = keyed.start("keyed", input_data={"api_key": SECRET, "customer": "ann"})
    token = {SEALED: stored_token(keyed, alices)}
    bobs = keyed.start("bobs", "bob", input_data={"customer": "bob"})
    set_input(keyed, bobs, {"customer": token})  # alice's token in bob's execution
    gate = keyed.start("gated", "bob", input_data={"customer": "bob"})
    set_input(keyed, gate, {"customer": token})
    keyed.harness.work()
    assert seen == ["ann"]  # alice's agent had her execution's input; bob's never had it
    [attempt] = keyed.get(f"/executions/{bobs}/logs", "bob", params={"step_name": "use"}).json()
    assert attempt["status"] == "failed" and attempt["error_type"] == "key_missing"
    assert "bound to another execution or schedule" in attempt["error_message"]
    done = keyed.post(f"/executions/{gate}/steps/first/complete", "bob", json={"data": {}})
    assert done.status_code == 422, done.text  # its condition cannot read it: nothing changes
    assert "bound to another execution or schedule" in done.json()["detail"]
    assert keyed.harness.statuses(gate) == {"first": "waiting", "then": "pending"}
    view = keyed.get(f"/executions/{gate}", "bob").json()
    assert SECRET not in json.dumps(view) and SECRET not in everything_stored(keyed)


def test_a_childs_values_are_bound_to_its_tree_and_its_output_opens_for_its_parent(keyed: Api) -> None:
    seen: list[Any] = []
    keyed.harness.agent("child_use", lambda ctx: seen.append(ctx.input["key"]) or {"copy": ctx.input["key"]})
    keyed.harness.agent("after", lambda ctx: seen.append(ctx.steps["sub"]["inner"]["copy"]) or {})
    keyed.register(
        {
            "name": "child",
            "version": "1.0.0",
            "input_schema": {"type": "object", "properties": {"key": {"type": "string", "writeOnly": True}}},
            "steps": [{"name": "inner", "agent": "child_use"}],
        }
    )
    keyed.register(
        {
            "name": "parent",
            "version": "1.0.0",
            "secrets": ["input.api_key"],
            "steps": [
                {"name": "sub", "type": "workflow", "workflow": "child", "input": {"key": "input.api_key"}},
                {"name": "after", "agent": "after"},
            ],
            "edges": [{"from": "sub", "to": "after"}],
        }
    )
    parent = keyed.start("parent", input_data={"api_key": SECRET})
    other = keyed.start("parent", input_data={"api_key": "sk-other-0000"})
    keyed.harness.work()
    assert keyed.get(f"/executions/{parent}").json()["status"] == "completed"
    assert sorted(seen) == sorted(
        [SECRET, SECRET, "sk-other-0000", "sk-other-0000"]
    )  # the child's, the parent's
    [child] = keyed.get(f"/executions/{parent}").json()["children"]
    token = stored_token(keyed, child["execution_id"], "key")
    alice = owner(keyed, "alice")
    keys = Keyring(KEY)
    assert keys.open(token, Binding.execution(alice, parent)) == SECRET  # its tree's
    with pytest.raises(KeyMissing):
        keys.open(token, Binding.execution(alice, other))  # not another tree's, the same owner's
    with pytest.raises(KeyMissing):
        keys.open(token, Binding.execution(owner(keyed, "bob"), parent))
    assert SECRET not in everything_stored(keyed)


def test_a_value_sealed_before_bindings_fails_its_step_until_rotation_binds_it_to_its_execution(
    keyed: Api,
) -> None:
    seen: list[Any] = []
    keyed.harness.agent("use", lambda ctx: seen.append(ctx.input["api_key"]) or {})
    old = {SEALED: Fernet(KEY).encrypt(json.dumps(SECRET).encode()).decode()}  # the old format
    before = keyed.start("keyed", input_data={"customer": "a"})
    set_input(keyed, before, {"api_key": old})
    keyed.harness.work()
    [attempt] = keyed.get(f"/executions/{before}/logs", params={"step_name": "use"}).json()
    assert attempt["error_type"] == "key_missing" and "run `wfe keys rotate`" in attempt["error_message"]
    after = keyed.start("keyed", input_data={"customer": "b"})
    set_input(keyed, after, {"api_key": old})
    rotated = dict(sealed.rewrite(keyed.harness.store, Keyring(KEY).rotated))  # what `wfe keys rotate` does
    assert rotated["wfe_executions"] == 2
    keyed.harness.work()
    assert seen == [SECRET]  # bound to the execution that holds it, it opens there
    alice = owner(keyed, "alice")
    assert Keyring(KEY).open(stored_token(keyed, after), Binding.execution(alice, after)) == SECRET


# what is shown


def test_a_schedules_history_shows_its_secret_input_as_stars(keyed: Api) -> None:
    made = keyed.post(
        "/schedules",
        json={
            "name": "nightly",
            "workflow": "keyed",
            "every": 3600,
            "input": {"api_key": SECRET, "customer": "c"},
        },
    )
    assert made.status_code == 201, made.text
    shown = keyed.get("/schedules/nightly")
    [created] = shown.json()["changes"]
    assert created["details"]["input"] == {"api_key": "***", "customer": "c"}
    assert SEALED not in shown.text and SECRET not in shown.text
    changes = t.schedule_changes
    with keyed.harness.store.engine.begin() as conn:
        details = [row[0] for row in conn.execute(sa.select(changes.c.details))]
        assert SEALED not in json.dumps(details)  # (the history keeps no sealed copy either)
        sealed_copy = {"input": {"api_key": {SEALED: "gAAAA-as-stored-before"}, "customer": "c"}}
        conn.execute(sa.update(changes).values(details=sealed_copy))  # as an older version wrote it
    [before] = keyed.get("/schedules/nightly").json()["changes"]
    assert before["details"]["input"] == {"api_key": "***", "customer": "c"}


def test_what_an_agent_makes_of_a_secret_is_masked_in_every_row_view_and_log_line(
    keyed: Api, caplog: pytest.LogCaptureFixture
) -> None:
    def use(ctx: AgentContext) -> dict[str, Any]:
        key, pin = ctx.input["api_key"], ctx.input["pin"]
        if ctx.attempt == 1:
            ctx.save_checkpoint({"note": f"half done with {key}", key: pin, "pin": pin})
            ctx.log.info("header Bearer %s, pin %s", key, pin)
            raise TransientError(f"vendor said no to {key}!", code=f"E-{pin}")
        return {
            "header": f"Bearer {key}",
            key: "as a key",
            "count": pin,
            "deep": [[{"k": [f"x{key}y", float(pin)]}]],
            "checkpoint": ctx.checkpoint,
        }

    def boom(ctx: AgentContext) -> dict[str, Any]:
        raise type(f"Refused{ctx.input['pin']}", (Exception,), {})(f"again {ctx.input['api_key']}")

    keyed.harness.agent("use", use)
    keyed.harness.agent("boom", boom)
    steps = [
        {"name": "use", "agent": "use", "retry": {"max_attempts": 2}},
        {"name": "boom", "agent": "boom", "required": False},
    ]
    keyed.register(
        {"name": "leaky", "version": "1.0.0", "input_schema": KEYED["input_schema"], "steps": steps}
    )
    caplog.set_level(logging.DEBUG)
    execution = keyed.start("leaky", input_data={"api_key": SECRET, "pin": PIN, "customer": "c"})
    for _ in range(2):
        keyed.harness.work()
        keyed.harness.clock.advance(60)
    assert keyed.get(f"/executions/{execution}").json()["status"] == "completed"
    attempts = keyed.get(f"/executions/{execution}/logs").json()
    errors = {(a["step_name"], a["error_type"], a["error_code"], a["error_message"]) for a in attempts}
    assert errors == {
        ("use", "transient", "E-***", "vendor said no to ***!"),
        ("use", None, None, None),
        ("boom", "Refused***", None, "Refused***: again ***"),
    }
    [output] = [a["output_data"] for a in attempts if a["status"] == "succeeded"]
    assert output["header"] == "Bearer ***" and output["***"] == "as a key" and output["count"] == "***"
    assert output["deep"] == [[{"k": ["x***y", "***"]}]]
    client, _ = signed_in(keyed, "alice")
    keyed.harness.clock.advance(2 * 86400)  # (then purged, with an archive)
    archive = io.StringIO()
    surfaces = {
        "the monitor's page": client.get(f"/ui/executions/{execution}").text,
        **{
            f"attempt {run.id}": client.get(f"/ui/executions/{execution}/attempts/{run.id}").text
            for run in keyed.harness.runs(execution)
        },
        "the tables": everything_stored(keyed),
        "the log lines": caplog.text,
        "the execution": keyed.get(f"/executions/{execution}?include_events=true").text,
        "its logs": json.dumps(attempts),
        "its events": keyed.get(f"/executions/{execution}/events").text,
        "the error groups": keyed.get("/errors").text,
    }
    assert Purger(keyed.harness.store).purge(timedelta(days=1), archive=archive).executions == 1
    surfaces["the purge's archive"] = archive.getvalue()
    for plain in (SECRET, str(PIN)):
        assert [name for name, text in surfaces.items() if plain in text] == [], plain


def test_a_failing_condition_on_a_secret_never_prints_it(keyed: Api) -> None:
    keyed.harness.agent("use", lambda ctx: {})
    keyed.register(
        {
            "name": "cond",
            "version": "1.0.0",
            "secrets": ["input.api_key"],
            "steps": [{"name": "a", "agent": "use"}, {"name": "b", "agent": "use"}],
            "edges": [{"from": "a", "to": "b", "when": "int(input.api_key) > 0"}],
        }
    )
    execution = keyed.start("cond", input_data={"api_key": SECRET})
    keyed.harness.work()
    view = keyed.get(f"/executions/{execution}").json()
    assert view["status"] == "failed" and view["error"]["type"] == "condition", view
    assert "int() failed" in view["error"]["message"] and "***" in view["error"]["message"]
    assert SECRET not in json.dumps(view) and SECRET not in everything_stored(keyed)


def test_an_unchanged_secret_still_reaches_the_next_agent_sealed(keyed: Api) -> None:
    """Masking is for what is changed: a secret handed on as it is stays sealed, and opens."""
    seen: list[Any] = []
    keyed.harness.agent("give", lambda ctx: {"copy": ctx.input["api_key"], "n": ctx.input["pin"]})
    keyed.harness.agent("take", lambda ctx: seen.append(ctx.steps["give"]) or {})
    keyed.register(
        {
            **KEYED,
            "name": "pass",
            "steps": [{"name": "give", "agent": "give"}, {"name": "take", "agent": "take"}],
            "edges": [{"from": "give", "to": "take"}],
        }
    )
    execution = keyed.start("pass", input_data={"api_key": SECRET, "pin": PIN})
    keyed.harness.work()
    assert seen == [{"copy": SECRET, "n": PIN}]
    [give] = keyed.get(f"/executions/{execution}/logs", params={"step_name": "give"}).json()
    assert give["output_data"] == {"copy": "***", "n": "***"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_grandchild_reads_its_trees_secret_in_its_agent_and_its_condition(
    api_factory: Callable[..., Api], backend: str
) -> None:
    api = api_factory(backend, encryption_keys=KEY)
    seen: list[Any] = []
    api.harness.agent("leaf", lambda ctx: seen.append(ctx.input["key"]) or {"copy": ctx.input["key"]})
    secret_input = {"type": "object", "properties": {"key": {"type": "string", "writeOnly": True}}}
    api.register(
        {
            "name": "grandchild",
            "version": "1.0.0",
            "input_schema": secret_input,
            "steps": [{"name": "a", "agent": "leaf"}, {"name": "b", "agent": "leaf"}],
            "edges": [{"from": "a", "to": "b", "when": "steps.a.copy == input.key"}],  # reads it opened
        }
    )
    for name, below in (("child", "grandchild"), ("top", "child")):
        api.register(
            {
                "name": name,
                "version": "1.0.0",
                "input_schema": secret_input,
                "steps": [
                    {"name": "sub", "type": "workflow", "workflow": below, "input": {"key": "input.key"}}
                ],
            }
        )
    top = api.start("top", input_data={"key": SECRET})
    api.harness.work()
    assert api.get(f"/executions/{top}").json()["status"] == "completed"
    assert seen == [SECRET, SECRET]
    assert SECRET not in everything_stored(api)
