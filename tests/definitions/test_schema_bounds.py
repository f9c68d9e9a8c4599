"""What a definition's JSON Schemas may hold: references only within the document (nothing is ever
fetched, from a network or a file), and a bounded size, depth and pattern length; and the size of
data checked against one."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.listener import Listener
from workflow_engine.definitions import schemas
from workflow_engine.definitions.schemas import check_data
from workflow_engine.definitions.validation import load_document, validate_document
from workflow_engine.errors import InputError

pytestmark = pytest.mark.unit


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as listening:
        yield listening


def document(input_schema: Any = None, step_schema: Any = None, wait_schema: Any = None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"name": "a", "agent": "echo"}]
    if step_schema is not None:
        steps.append({"name": "approve", "type": "human", "input_schema": step_schema})
    if wait_schema is not None:
        steps.append({"name": "paid", "type": "wait", "input_schema": wait_schema})
    doc: dict[str, Any] = {"name": "w", "version": "1.0.0", "steps": steps}
    if input_schema is not None:
        doc["input_schema"] = input_schema
    return doc


def problems_of(doc: dict[str, Any]) -> list[str]:
    definition, problems = validate_document(doc)
    assert definition is None, "expected the document to be refused"
    return [f"{p.location}: {p.message}" for p in problems]


def remote_refs(base: str, tmp_path: Path) -> list[dict[str, Any]]:
    local_file = tmp_path / "s.json"
    local_file.write_text('{"type": "string"}')
    return [
        {"$ref": f"{base}/s.json"},
        {"type": "object", "properties": {"x": {"$ref": f"{base}/s.json#/x"}}},
        {"$ref": local_file.as_uri()},
        {"$id": f"{base}/root.json", "properties": {"x": {"$ref": "other.json"}}},
        {"$dynamicRef": f"{base}/s.json"},
        # reachable only through a pointer to a place no keyword reads
        {"$ref": "#/hidden", "hidden": {"$ref": f"{base}/s.json"}},
    ]


def refusal(schema: dict[str, Any]) -> str:
    """Why data is refused against ``schema`` (jsonschema warns only after it has fetched)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            check_data(schema, {"x": 1}, "input")
        except InputError as exc:
            return str(exc)
    return "accepted"


@pytest.mark.parametrize("where", ["input_schema", "step_schema", "wait_schema"])
def test_a_reference_outside_the_document_is_refused_at_registration(
    listener: Listener, tmp_path: Path, where: str
) -> None:
    for schema in remote_refs(listener.url, tmp_path):
        found = problems_of(document(**{where: schema}))
        assert any("refers outside the schema" in line for line in found), (schema, found)
    assert listener.requests == 0


def test_references_within_the_document_still_work() -> None:
    schema = {
        "$defs": {"name": {"type": "string", "minLength": 1}},
        "type": "object",
        "properties": {"first": {"$ref": "#/$defs/name"}, "again": {"$ref": "#"}},
    }
    definition, problems = validate_document(document(schema))
    assert definition is not None and not problems
    check_data(schema, {"first": "Ada"}, "input")
    with pytest.raises(InputError, match=r"should be non-empty|is too short"):
        check_data(schema, {"first": ""}, "input")


def test_a_stored_schema_with_a_remote_reference_fetches_nothing_when_data_is_checked(
    listener: Listener, tmp_path: Path
) -> None:
    refused = [refusal(schema) for schema in remote_refs(listener.url, tmp_path)]
    assert listener.requests == 0
    assert all("refers outside the schema" in why for why in refused), refused


def test_the_validator_itself_retrieves_nothing(
    listener: Listener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # were the rule above bypassed, the validator's registry still refuses to retrieve anything
    monkeypatch.setattr(schemas, "schema_problem", lambda _schema: None)
    refused = [refusal(schema) for schema in remote_refs(listener.url, tmp_path)[:4]]
    assert listener.requests == 0
    assert all("refers to a schema it does not hold" in why for why in refused), refused


# the size of a schema, and of what is checked against one


def wide(keywords: int) -> dict[str, Any]:
    return {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(keywords)}}


def deep(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def test_a_schema_with_too_many_keywords_is_refused() -> None:
    fits = wide(schemas.MAX_SCHEMA_KEYWORDS // 2 - 2)
    definition, _ = validate_document(document(fits))
    assert definition is not None
    found = problems_of(document(wide(schemas.MAX_SCHEMA_KEYWORDS)))
    assert any(f"more than {schemas.MAX_SCHEMA_KEYWORDS} keywords" in line for line in found), found


def test_a_schema_nested_too_deep_is_refused() -> None:
    levels = schemas.MAX_SCHEMA_DEPTH // 2
    definition, _ = validate_document(document(deep(levels - 1)))
    assert definition is not None
    found = problems_of(document(step_schema=deep(levels + 1)))
    assert any(f"nested more than {schemas.MAX_SCHEMA_DEPTH} levels" in line for line in found), found


@pytest.mark.parametrize("place", ["pattern", "patternProperties"])
def test_a_pattern_too_long_is_refused(place: str) -> None:
    long = "a" * (schemas.MAX_PATTERN_LENGTH + 1)
    schema: dict[str, Any] = (
        {"type": "string", "pattern": long} if place == "pattern" else {"patternProperties": {long: {}}}
    )
    found = problems_of(document(wait_schema={"type": "object", "properties": {"x": schema}}))
    assert any(f"longer than {schemas.MAX_PATTERN_LENGTH} characters" in line for line in found), found
    fine = "a" * schemas.MAX_PATTERN_LENGTH
    definition, _ = validate_document(document({"type": "object", "properties": {"x": {"pattern": fine}}}))
    assert definition is not None


def test_data_with_too_many_values_is_not_checked_against_a_schema() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "array", "items": {"type": "integer"}}}}
    check_data(schema, {"x": [1] * (schemas.MAX_CHECKED_VALUES - 2)}, "input")
    with pytest.raises(InputError, match=f"more than {schemas.MAX_CHECKED_VALUES} values"):
        check_data(schema, {"x": [1] * schemas.MAX_CHECKED_VALUES}, "input")
    # without a schema there is nothing to check it against: only the request's size bounds it
    check_data(None, {"x": [1] * schemas.MAX_CHECKED_VALUES}, "input")


@pytest.mark.parametrize("dialect", [[], 5, "x", "http://127.0.0.1:9/meta.json"])
def test_a_schema_naming_no_known_draft_is_refused_not_a_server_error(dialect: Any) -> None:
    found = problems_of(document({"$schema": dialect, "type": "object"}))
    assert any("is not a JSON Schema draft the engine knows" in line for line in found), found
    nested = {"$defs": {"d": {"$schema": dialect}}, "properties": {"a": {"$ref": "#/$defs/d"}}}
    with pytest.raises(InputError, match="is not a JSON Schema draft"):
        check_data(nested, {"a": 1}, "input")


def test_the_known_drafts_are_accepted() -> None:
    for dialect in (
        "https://json-schema.org/draft/2020-12/schema",
        "http://json-schema.org/draft-07/schema#",
    ):
        definition, problems = validate_document(document({"$schema": dialect, "type": "object"}))
        assert definition is not None and not problems


def test_a_definition_s_schemas_are_bounded_in_all() -> None:
    half = wide(schemas.MAX_SCHEMA_KEYWORDS // 5)  # 2/5 of the limit each
    definition, _ = validate_document(document(half, step_schema=half))
    assert definition is not None
    found = problems_of(document(half, step_schema=half, wait_schema=half))
    assert any(f"schemas hold more than {schemas.MAX_SCHEMA_KEYWORDS}" in line for line in found), found


def test_a_stored_version_that_breaks_a_later_rule_still_loads_and_its_data_checks_refuse(
    listener: Listener,
) -> None:
    remote = {"$ref": f"{listener.url}/s.json"}
    doc = document(remote, step_schema=wide(schemas.MAX_SCHEMA_KEYWORDS))
    assert problems_of(doc)  # registering it is refused
    stored = load_document(doc, "w@1.0.0", stored=True)  # read back, its executions go on
    assert stored.input_schema == remote
    assert refusal(remote).endswith("nothing is fetched from a network or a file")
    assert listener.requests == 0
