"""What data may be stored: depth, finite numbers, valid Unicode, string keys, a size limit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.core.payloads import MAX_DEPTH, payload_problem

_STORABLE = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "where", "says"),
    [
        ({"a": float("nan")}, "a", "finite numbers only"),
        ({"a": [1, float("inf")]}, "a/1", "finite numbers only"),
        ({"a": "x\ud800"}, "a", "lone surrogate"),
        ({"a": ["x\x00y"]}, "a/0", "a NUL"),
        ({"\udfff": 1}, "(root)", "lone surrogate"),
        ({"a": {1: 2}}, "a", "keys must be strings"),
        ({"a": object()}, "a", "is not JSON"),
        ({"a": nested(MAX_DEPTH)}, "a/0/0", f"more than {MAX_DEPTH} levels"),
    ],
)
def test_what_cannot_be_stored_is_named_with_where_it_is(value: Any, where: str, says: str) -> None:
    problem = payload_problem(value)
    assert problem is not None and says in problem.message and problem.location.startswith(where)


def test_depth_is_checked_without_recursion_whatever_the_depth() -> None:
    assert payload_problem(nested(MAX_DEPTH)) is None
    assert payload_problem(nested(MAX_DEPTH + 1)) is not None
    assert payload_problem(nested(200_000)) is not None  # far past the recursion limit


def test_shared_values_count_each_time_they_are_used() -> None:
    level: Any = ["lol"] * 10
    for _ in range(6):
        level = [level] * 10  # what YAML anchors build: a million values from a few lines
    problem = payload_problem(level, max_nodes=100_000)
    assert problem is not None and "100000 values" in problem.message


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(_STORABLE),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(_STORABLE), inner),
        max_leaves=30,
    )
)
def test_plain_json_within_the_depth_is_accepted(value: Any) -> None:
    assert payload_problem(value) is None
