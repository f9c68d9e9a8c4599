"""Data checked against definitions' JSON Schemas: patterns under a time limit."""

from __future__ import annotations

from typing import Any

import pytest

from workflow_engine.definitions import schemas
from workflow_engine.definitions.schemas import check_data
from workflow_engine.errors import InputError

EXPONENTIAL = "^(a|a)*$"  # backtracks exponentially in Python's re on "aaaa...!"


def schema(pattern: str) -> dict[str, object]:
    return {"type": "object", "properties": {"x": {"type": "string", "pattern": pattern}}}


def test_patterns_still_match_and_refuse_as_before() -> None:
    check_data(schema("^[a-z]+$"), {"x": "abc"}, "input")
    with pytest.raises(InputError, match="does not match"):
        check_data(schema("^[a-z]+$"), {"x": "ABC"}, "input")


def test_a_pattern_that_cannot_be_decided_in_time_counts_as_not_matching() -> None:
    with pytest.raises(InputError, match="could not be checked against"):
        check_data(schema(EXPONENTIAL), {"x": "a" * 40 + "!"}, "input")


def test_pattern_properties_are_bounded_too() -> None:
    bounded = {"type": "object", "patternProperties": {EXPONENTIAL: {"type": "integer"}}}
    with pytest.raises(InputError, match="could not be checked"):
        check_data(bounded, {"a" * 40 + "!": 1}, "input")
    with pytest.raises(InputError, match="is not of type 'integer'"):
        check_data(bounded, {"aaa": "x"}, "input")


def test_one_check_spends_a_bounded_time_on_patterns_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    search = schemas.regex.search

    def counted(*args: Any, **options: Any) -> Any:
        calls.append(options)
        return search(*args, **options)

    monkeypatch.setattr(schemas.regex, "search", counted)
    many = {"type": "object", "properties": {"x": {"type": "array", "items": {"pattern": EXPONENTIAL}}}}
    with pytest.raises(InputError) as refused:
        check_data(many, {"x": ["a" * 40 + "!"] * 200}, "input")
    assert len(refused.value.problems) == schemas.MAX_PROBLEMS
    # each match that runs out takes its whole limit; once the check's own is spent, no more run
    assert len(calls) <= schemas.CHECK_SECONDS / schemas.PATTERN_SECONDS + 1
    # and every match lets other threads (the API's event loop) run while it works
    assert all(call["concurrent"] and call["timeout"] <= schemas.PATTERN_SECONDS for call in calls)


@pytest.mark.parametrize(
    ("bad", "says"),
    [({"$ref": "#"}, "refers to itself"), ({"$ref": "http://schemas.invalid/s.json"}, "does not hold")],
)
def test_a_schema_that_cannot_be_applied_is_an_input_error(bad: dict[str, Any], says: str) -> None:
    with pytest.raises(InputError, match=says):
        check_data(bad, {"a": 1}, "input")
