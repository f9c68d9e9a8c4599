"""Data checked against definitions' JSON Schemas: patterns under a time limit."""

from __future__ import annotations

import sys
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
    [
        ({"$ref": "#"}, "refers to itself"),
        ({"$ref": "#/$defs/missing"}, "does not hold"),
        ({"$ref": "http://schemas.invalid/s.json"}, "refers outside the schema"),
    ],
)
def test_a_schema_that_cannot_be_applied_is_an_input_error(bad: dict[str, Any], says: str) -> None:
    with pytest.raises(InputError, match=says):
        check_data(bad, {"a": 1}, "input")


def test_additional_properties_match_names_against_patterns_under_the_limit() -> None:
    bounded = {"type": "object", "patternProperties": {EXPONENTIAL: {}}, "additionalProperties": False}
    with pytest.raises(InputError, match=r"could not be checked against .* in time"):
        check_data(bounded, {"a" * 40 + "!": 1}, "input")
    check_data(bounded, {"aaa": 1}, "input")
    with pytest.raises(InputError, match=r"additional properties are not allowed \('b' unexpected\)"):
        check_data(bounded, {"aaa": 1, "b": 2}, "input")
    typed = {"type": "object", "properties": {"n": {}}, "additionalProperties": {"type": "integer"}}
    check_data(typed, {"n": "any", "m": 1}, "input")
    with pytest.raises(InputError, match="is not of type 'integer'"):
        check_data(typed, {"m": "x"}, "input")


def test_unique_items_keeps_json_schema_equality() -> None:
    unique = {"type": "object", "properties": {"x": {"type": "array", "uniqueItems": True}}}
    check_data(unique, {"x": [1, True, "1", [1], {"a": 1}, {"a": True}, None, False, 0]}, "input")
    for repeated in (
        [1, 1.0],
        [{"a": [1, 2]}, {"a": [1, 2]}],
        [[{"b": None}], [{"b": None}]],
        [False, False],
    ):
        with pytest.raises(InputError, match="repeats an earlier item"):
            check_data(unique, {"x": repeated}, "input")


def _calls_to_check(schema: dict[str, Any], data: dict[str, Any]) -> int:
    """How many Python functions one check calls: a measure of its work that no clock affects."""
    calls = 0

    def count(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        check_data(schema, data, "input")
    except InputError:
        pass
    finally:
        sys.setprofile(None)
    return calls


def test_unique_items_over_many_objects_is_linear() -> None:
    unique = {"type": "object", "properties": {"x": {"type": "array", "uniqueItems": True}}}
    small, large = (_calls_to_check(unique, {"x": [{"a": i} for i in range(n)]}) for n in (500, 1000))
    # twice the items, about twice the work (comparing every pair would be four times)
    assert large < 2.5 * small


def test_a_schema_that_multiplies_the_work_is_refused_within_the_check_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schemas, "CHECK_SECONDS", 0.5)
    depth = 40  # each level doubles the work: 2**40 applications without a deadline
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(depth)
    }
    defs[f"d{depth}"] = {"type": "string"}
    chained = {"$defs": defs, "type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}}
    with pytest.raises(InputError, match=r"could not be checked against the schema within 0.5 s"):
        check_data(chained, {"x": 1}, "input")


@pytest.mark.parametrize("keyword", ["unevaluatedProperties", "unevaluatedItems"])
def test_the_unevaluated_keywords_are_refused_wherever_they_appear(keyword: str) -> None:
    nested = {"properties": {"x": {"allOf": [{keyword: False}]}}}
    with pytest.raises(InputError, match=f"{keyword} is not supported"):
        check_data(nested, {"x": {}}, "input")
    # a property or an enum value that only bears the keyword's name is no use of it
    named = {"properties": {keyword: {"enum": [{keyword: False}]}}}
    check_data(named, {keyword: {keyword: False}}, "input")


def test_the_unevaluated_keywords_cannot_run_past_the_deadline() -> None:
    # jsonschema follows $ref and dependentSchemas for unevaluatedProperties without applying
    # any keyword: this chain doubles its work at each level, out of the deadline's reach
    depth = 25
    defs: dict[str, Any] = {
        f"d{i}": {"$ref": f"#/$defs/d{i + 1}", "dependentSchemas": {"a": {"$ref": f"#/$defs/d{i + 1}"}}}
        for i in range(depth)
    }
    defs[f"d{depth}"] = {}
    with pytest.raises(InputError, match="is not supported"):
        check_data({"$defs": defs, "unevaluatedProperties": False, "$ref": "#/$defs/d0"}, {"a": 1}, "input")


def test_many_patterns_over_many_names_stop_at_the_first_undecided_match() -> None:
    patterns = {f"^{EXPONENTIAL[1:-1]}{i}$": {} for i in range(400)}
    names = {"a" * 30 + "!" + str(i): 1 for i in range(2000)}
    for schema in (
        {"type": "object", "patternProperties": patterns},
        {"type": "object", "patternProperties": patterns, "additionalProperties": False},
    ):
        calls = _calls_to_check(schema, names)
        with pytest.raises(InputError) as refused:
            check_data(schema, names, "input")
        problems = refused.value.problems  # one per keyword that matches names against patterns
        assert len(problems) <= 2 and all("in time" in problem.message for problem in problems)
        # one undecided match ends the keyword: far fewer calls than 400 patterns x 2000 names
        assert calls < 50_000, calls
