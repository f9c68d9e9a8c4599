"""Secret values in payloads: declared paths, sealing, opening, masking, hiding in text."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.core import secrets
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import DefinitionError
from workflow_engine.secrets import Binding, KeyMissing, Keyring, new_key

pytestmark = pytest.mark.unit


HERE = Binding.execution(1, "e-1")


def seal(value: Any) -> str:
    return f"<{value!r}>"


def test_the_paths_of_a_definition_come_from_its_secrets_and_its_write_only_fields() -> None:
    schema = {
        "type": "object",
        "properties": {
            "api_key": {"type": "string", "writeOnly": True},
            "customer": {"type": "object", "properties": {"ssn": {"type": "string", "writeOnly": True}}},
            "name": {"type": "string"},
        },
    }
    form = {"type": "object", "properties": {"pin": {"type": "string", "writeOnly": True}}}
    definition = (
        WorkflowBuilder("vault", input_schema=schema)
        .agent("fetch", "echo")
        .human("approve", input_schema=form)
        .secrets("steps.fetch.token")
        .build()
    )
    paths = definition.secret_paths
    assert paths.input == (("api_key",), ("customer", "ssn"))
    assert paths.outputs == {"fetch": (("token",),), "approve": (("pin",),)}


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("steps.nope.token", "names no step of this workflow"),
        ("input", "names the whole input"),
        ("steps.fetch", "names a whole output"),
        ("output.token", "must start with input. or steps."),
        ("input..key", "is not a dotted path"),
    ],
)
def test_a_path_that_can_never_name_a_value_is_refused_at_registration(path: str, problem: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        WorkflowBuilder("vault").agent("fetch", "echo").secrets(path).build()
    assert any(p.location == "secrets[0]" and problem in p.message for p in raised.value.problems)


def test_sealing_paths_replaces_what_is_there_and_leaves_absent_paths_alone() -> None:
    value = {"api_key": "k", "customer": {"ssn": 123, "name": "Ann"}}
    sealed = secrets.seal_paths(value, [("api_key",), ("customer", "ssn"), ("missing", "x")], seal)
    assert sealed == {
        "api_key": {"$sealed": "<'k'>"},
        "customer": {"ssn": {"$sealed": "<123>"}, "name": "Ann"},
    }
    assert value["api_key"] == "k"  # (a copy)
    assert secrets.seal_paths(sealed, [("api_key",)], seal) == sealed  # never sealed twice


def test_a_known_secret_text_is_sealed_wherever_an_agent_puts_it_and_masked_inside_other_text() -> None:
    out = {"copy": "s3cret", "inside": ["a", {"deep": "s3cret"}], "other": "s3cret!", "s3cret-id": 1}
    sealed = secrets.seal_known(out, {"s3cret": True}, seal)
    assert sealed == {
        "copy": {"$sealed": "<'s3cret'>"},
        "inside": ["a", {"deep": {"$sealed": "<'s3cret'>"}}],
        "other": "***!",
        "***-id": 1,
    }


def test_opening_gathers_the_texts_and_masking_shows_stars() -> None:
    keys = Keyring(new_key()).bound(HERE)
    sealed = keys.sealed({"a": "plain", "b": {"pin": 4321, "who": ["x", "y"]}}, [("b",)])
    texts: dict[str, Any] = {}
    assert keys.opened(sealed, texts) == {"a": "plain", "b": {"pin": 4321, "who": ["x", "y"]}}
    assert set(texts) == {"4321", "x", "y"}
    assert secrets.masked(sealed) == {"a": "plain", "b": "***"}
    assert secrets.masked({"a": 1}) == {"a": 1}


def test_hiding_replaces_the_longest_text_first_and_leaves_short_ones() -> None:
    text = "failed for sk-abc-123 (key sk-abc) 42 abc"
    assert secrets.hide(text, ["sk-abc", "sk-abc-123", "42", "abc"]) == "failed for *** (key ***) 42 abc"


def test_keys_rotate_the_first_seals_all_open_and_a_lost_key_is_a_clear_failure() -> None:
    old, new = new_key(), new_key()
    token = Keyring(old).seal({"pin": 1}, HERE)
    both = Keyring(f"{new},{old}")
    rotated = both.rotate(token)
    assert rotated is not None and Keyring(new).open(rotated, HERE) == {"pin": 1}
    assert both.rotate(rotated) is None  # (sealed by the first key already: left alone)
    with pytest.raises(KeyMissing, match="not in WFE_ENCRYPTION_KEYS"):
        Keyring(new).open(token, HERE)
    with pytest.raises(KeyMissing, match="no key is configured"):
        Keyring(None).open(token, HERE)


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(Exception, match="32 url-safe base64-encoded bytes") as raised:
        Keyring("not-a-key")
    assert "not-a-key" not in str(raised.value)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_sealing_then_opening_gives_the_value_back(value: Any) -> None:
    keys = Keyring(KEY).bound(HERE)
    sealed = keys.sealed({"v": value}, [("v",)])
    assert secrets.masked(sealed) == {"v": "***"}
    assert keys.opened(sealed, {}) == {"v": value}


KEY = new_key()
