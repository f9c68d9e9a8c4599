"""What a new version changes against the latest, and which changes break."""

from __future__ import annotations

from typing import Any

import pytest

from workflow_engine.definitions import load
from workflow_engine.definitions.compatibility import breaking, compare, schema_changes

BASE: dict[str, Any] = {
    "name": "orders",
    "version": "1.0.0",
    "input_schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
    "steps": [
        {"name": "fetch", "agent": "fetcher"},
        {"name": "check", "type": "human"},
        {"name": "ship", "agent": "shipper"},
    ],
}


def version(**changes: Any) -> Any:
    return load({**BASE, "version": "1.1.0", **changes})


def lines(document: dict[str, Any]) -> list[str]:
    return [change.line() for change in compare(load(BASE), version(**document))]


def test_the_same_definition_changes_nothing() -> None:
    assert compare(load(BASE), version()) == []


def test_steps_added_removed_retyped_and_rerouted() -> None:
    steps = [
        {"name": "fetch", "agent": "fetcher2"},
        {"name": "check", "agent": "checker"},
        {"name": "bill", "agent": "biller"},
    ]
    assert lines({"steps": steps}) == [
        "step added bill: a new agent step",
        "step runs fetch: fetcher → fetcher2",
        "step retyped check: human → agent (breaking)",
        "step removed ship: the agent step is gone (breaking)",
        "edge added check → bill: always",
        "edge removed check → ship: always",
    ]


def test_only_removed_and_retyped_steps_and_a_narrowed_input_break() -> None:
    added = version(steps=[*BASE["steps"], {"name": "archive", "agent": "archiver"}])
    assert compare(load(BASE), added) and not breaking(compare(load(BASE), added))
    schema = {**BASE["input_schema"], "required": ["id", "region"]}
    assert [c.kind for c in breaking(compare(load(BASE), version(input_schema=schema)))] == ["input narrowed"]


@pytest.mark.parametrize(
    ("old", "new", "found"),
    [
        (None, {"type": "object"}, [(True, "input", "now checked by a schema")]),
        ({"type": "object"}, None, [(False, "input", "no longer checked by a schema")]),
        ({"required": ["a"]}, {"required": ["a", "b"]}, [(True, "input.b", "now required")]),
        ({"required": ["a", "b"]}, {"required": ["a"]}, [(False, "input.b", "no longer required")]),
        (
            {"type": "string"},
            {"type": ["string", "null"]},
            [(False, "input", "type string → ['string', 'null']")],
        ),
        ({"type": "number"}, {"type": "integer"}, [(True, "input", "type number → integer")]),
        ({"type": "integer"}, {"type": "number"}, [(False, "input", "type integer → number")]),
        ({"enum": ["a", "b"]}, {"enum": ["a"]}, [(True, "input", "no longer accepts ['b']")]),
        ({"enum": ["a"]}, {"enum": ["a", "c"]}, [(False, "input", "now also accepts ['c']")]),
        ({"maxLength": 10}, {"maxLength": 5}, [(True, "input", "maxLength 10 → 5")]),
        ({"minimum": 1}, {"minimum": 0}, [(False, "input", "minimum 1 → 0")]),
        ({"type": "string"}, {"type": "string", "minLength": 1}, [(True, "input", "minLength none → 1")]),
        (
            {"properties": {"a": {"type": "string"}}},
            {"properties": {"a": {"type": "integer"}}},
            [(True, "input.a", "type string → integer")],
        ),
        (
            {"properties": {"a": {}}},
            {"properties": {"a": {}}, "additionalProperties": False},
            [(True, "input", "no longer accepts other properties")],
        ),
        (
            {"properties": {"a": {}, "b": {}}, "additionalProperties": False},
            {"properties": {"a": {}}, "additionalProperties": False},
            [(True, "input.b", "no longer accepted")],
        ),
        (
            {"properties": {"a": {}}},
            {"properties": {"a": {}, "n": {}}},
            [(False, "input.n", "a new property")],
        ),
        (
            {"items": {"type": "string"}},
            {"items": {"type": "string", "enum": ["x"]}},
            [(True, "input[]", "now one of ['x']")],
        ),
    ],
)
def test_how_an_input_schema_accepts_less_or_more(old: Any, new: Any, found: list[Any]) -> None:
    assert schema_changes(old, new, "input") == found
