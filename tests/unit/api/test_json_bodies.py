"""JSON request bodies that mean one thing: no duplicate keys, no NaN, bounded nesting."""

from __future__ import annotations

import pytest

from workflow_engine.api.limits import json_body_problem
from workflow_engine.core.payloads import MAX_DEPTH


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"workflow": "a", "workflow": "b"}', "'workflow' appears twice"),
        (b'{"a": {"b": 1, "b": 1}}', "'b' appears twice"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": [Infinity]}', "Infinity is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}", "nested more than"),
        (b"[" * 100_000, "nested more than"),
    ],
)
def test_an_ambiguous_or_too_deep_body_is_refused(body: bytes, says: str) -> None:
    problem = json_body_problem(body)
    assert problem is not None and says in problem


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "b": {"a": 2}}',
        b'{"a": "[[[[[[[[[[ {{{{ \\" [[["}',
        b'{"a": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}",
        b"not JSON at all",  # the route answers that one, as before
        b'{"a": 1e309}',  # parses (as infinity): the engine refuses it with where it is
    ],
)
def test_a_body_that_means_one_thing_passes(body: bytes) -> None:
    assert json_body_problem(body) is None
