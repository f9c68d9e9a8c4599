"""What every request must satisfy before the app sees it: a body within the limit (413), and no
NUL character anywhere (422)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import HELLO, Api
from workflow_engine.api.limits import body_has_nul, query_has_nul


def test_bodies_over_the_limit_are_413(api_factory: Callable[..., Api]) -> None:
    api = api_factory(max_request_bytes=1000)
    big = {"workflow": "hello", "input_data": {"blob": "x" * 2000}}
    assert api.post("/executions", json=big).status_code == 413
    chunks = iter([json.dumps(big).encode()[:600], json.dumps(big).encode()[600:]])
    streamed = api.client.post(
        "/api/v1/executions",
        content=chunks,
        headers={**api.headers("alice"), "content-type": "application/json"},
    )
    assert streamed.status_code == 413 and streamed.json()["detail"].startswith("request body larger")


NUL = "\x00"
NUL_REQUESTS: dict[str, Callable[[Api], Any]] = {
    "token form username": lambda api: api.client.post(
        "/api/v1/auth/token", data={"username": f"a{NUL}b", "password": "x"}
    ),
    "token json username": lambda api: api.client.post(
        "/api/v1/auth/token", json={"username": f"a{NUL}b", "password": "x"}
    ),
    "idempotency key": lambda api: api.post(
        "/executions", json={"workflow": "hello", "idempotency_key": f"k{NUL}"}
    ),
    "workflow name": lambda api: api.post("/workflows", json={**HELLO, "name": f"a{NUL}b"}),
    "description": lambda api: api.post("/workflows", json={**HELLO, "description": f"d{NUL}"}),
    "input key": lambda api: api.post(
        "/executions", json={"workflow": "hello", "input_data": {f"k{NUL}": 1}}
    ),
    "metadata value": lambda api: api.post(
        "/executions", json={"workflow": "hello", "metadata": {"m": f"v{NUL}"}}
    ),
    "raw byte in the body": lambda api: api.post(
        "/executions", content=b'{"workflow": "hel\x00lo"}', headers={"content-type": "application/json"}
    ),
    "query string": lambda api: api.get("/executions", params={"workflow": f"a{NUL}b"}),
    "path": lambda api: api.get("/workflows/a%00b"),
}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_nul_anywhere_in_a_request_is_422_and_changes_nothing(
    api_factory: Callable[..., Api], backend: str
) -> None:
    api = api_factory(backend=backend)
    api.register(HELLO)
    for case, send in NUL_REQUESTS.items():
        response = send(api)
        assert response.status_code == 422, (case, response.status_code, response.text)
        assert "NUL" in response.json()["detail"], case
    assert [w["name"] for w in api.get("/workflows").json()] == ["hello"]
    assert api.get("/executions").json()["total"] == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_text_that_only_looks_like_a_nul_is_accepted(api_factory: Callable[..., Api], backend: str) -> None:
    api = api_factory(backend=backend)
    described = api.post("/workflows", json={**HELLO, "description": "an escaped \\u0000 is text"})
    assert described.status_code == 201, described.text
    assert api.get("/workflows/hello").json()["description"] == "an escaped \\u0000 is text"
    assert api.start("hello", metadata={"url": "/x?a=%00"})
    assert api.get("/executions", params={"workflow": "%00"}).json()["total"] == 0


def test_nul_detection_tells_escapes_from_escaped_backslashes() -> None:
    assert body_has_nul(b'{"a": "\\u0000"}', b"application/json")
    assert body_has_nul(b'{"a": "\\\\\\u0000"}', b"application/json")
    assert not body_has_nul(b'{"a": "\\\\u0000"}', b"application/json")
    assert not body_has_nul(b'{"a": "%00"}', b"application/json")
    assert body_has_nul(b"username=a%00b", b"application/x-www-form-urlencoded; charset=utf-8")
    assert body_has_nul(b"\x00", b"")
    multipart = b'--b\r\ncontent-disposition: form-data; name="password"\r\n\r\nx\\u0000y\r\n--b--'
    assert not body_has_nul(multipart, b"multipart/form-data; boundary=b")  # text, not an escape
    assert body_has_nul(multipart.replace(b"x", b"\x00"), b"multipart/form-data; boundary=b")
    assert query_has_nul(b"workflow=a%00b") and query_has_nul(b"a=\x00")
    assert not query_has_nul(b"workflow=%2500")
