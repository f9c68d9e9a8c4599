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


def test_a_repeated_content_type_is_read_as_the_app_reads_it_the_first() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from workflow_engine.api.limits import RequestLimits

    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.headers["content-type"])

    app = RequestLimits(Starlette(routes=[Route("/", echo, methods=["POST"])]), max_bytes=1024)
    headers = [("content-type", "application/json"), ("content-type", "text/plain")]
    with TestClient(app) as client:
        response = client.post("/", content=b'{"a": 1, "a": 2}', headers=headers)
    assert response.status_code == 422 and "appears twice" in response.json()["detail"]
