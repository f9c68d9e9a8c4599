"""A request body is read and checked only once its sender is known: a body sent without a valid
access token (or, under /ui, the monitor's session) to a route that needs one is refused with
401 before a byte of it is read; the routes that hand out credentials still read theirs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.api.conftest import Api
from workflow_engine.ui.session import COOKIE

MIB = 1024 * 1024


def big_body() -> bytes:
    """Close to 1 MiB of JSON, many small objects (the costliest shape to check key by key)."""
    items = [{"a": i, "b": [i, i], "c": {"d": "e"}} for i in range(19_000)]
    body = json.dumps({"workflow": "hello", "input_data": {"items": items}}).encode()
    assert 0.5 * MIB < len(body) < MIB
    return body


def call(
    api: Api, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, int, Any]:
    """Send one request straight to the app: its status, how many times it read the body, and
    the JSON it answered."""
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode()), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    asyncio.run(api.client.app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, reads, json.loads(answer) if answer.startswith(b"{") else answer


JSON = (b"content-type", b"application/json")


def test_a_body_without_credentials_is_refused_before_it_is_read(api: Api) -> None:
    body = big_body()
    for headers in (
        [JSON],
        [JSON, (b"authorization", b"Bearer not-a-token")],
        [JSON, (b"authorization", b"Basic eDp5")],
    ):
        status, reads, answer = call(api, "POST", "/api/v1/executions", headers, body)
        assert (status, reads) == (401, 0), headers
        assert "not authenticated" in answer["detail"]
    status, reads, _ = call(
        api, "POST", "/ui/human-tasks/x/y", [JSON, (b"cookie", f"{COOKIE}=forged".encode())], body
    )
    assert (status, reads) == (401, 0)


def test_a_body_with_credentials_is_read_and_checked(api: Api) -> None:
    bearer = (b"authorization", f"Bearer {api.tokens['alice']}".encode())
    status, reads, answer = call(
        api, "POST", "/api/v1/executions", [JSON, bearer], b'{"workflow": "a", "workflow": "b"}'
    )
    assert status == 422 and reads == 1 and "appears twice" in answer["detail"]
    status, _, answer = call(api, "POST", "/api/v1/executions", [JSON, bearer], big_body())
    assert status == 404, answer  # read, checked, and answered by the route: no such workflow


def test_the_routes_that_hand_out_credentials_still_read_their_bodies(api: Api) -> None:
    for path in ("/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/auth/logout"):
        status, reads, answer = call(api, "POST", path, [JSON], b'{"a": 1, "a": 2}')
        assert (status, reads) == (422, 1), path
        assert "appears twice" in answer["detail"]
    form = (b"content-type", b"application/x-www-form-urlencoded")
    status, reads, _ = call(api, "POST", "/ui/login", [form], b"username=alice&password=x")
    assert reads == 1 and status != 500  # (the sign-in form answers for itself)


def test_a_request_without_a_body_reaches_its_route_which_answers_for_itself(api: Api) -> None:
    assert api.client.get("/api/v1/executions").status_code == 401
    assert api.client.get("/health").status_code == 200
