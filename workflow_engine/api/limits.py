"""What every request must satisfy before the app sees it: a body no larger than the configured
limit (413), no NUL character in its path, query string or body (422), and a JSON body that
means one thing (422): no key twice in an object (the YAML loader refuses duplicates too, and
JSON parsers disagree on which one wins), no ``NaN`` or ``Infinity``, nested no deeper than the
engine stores (:data:`~workflow_engine.core.payloads.MAX_DEPTH`, checked before parsing, so
that no body can exhaust the parser's recursion).

PostgreSQL stores neither a NUL in text nor a ``\\u0000`` in JSONB, so a NUL is refused here,
once for every route, instead of failing deep in the store."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflow_engine.core.payloads import MAX_DEPTH

NUL_DETAIL = "NUL characters (\\u0000, %00) are not accepted"
_FORM = b"application/x-www-form-urlencoded"
_PERCENT_NUL = b"%00"
# a JSON \u0000 escape: an odd run of backslashes before u0000 (an even run is escaped backslashes)
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def query_has_nul(query: bytes) -> bool:
    """Whether a raw (percent-encoded) query string carries a NUL."""
    return b"\x00" in query or _PERCENT_NUL in query


def body_kind(content_type: bytes | str) -> str:
    """How the routes read a body of ``content_type``: ``"form"`` (URL-encoded), ``"multipart"``
    (a multipart form), or ``"json"``: every other body, whatever it is labelled."""
    raw = content_type.encode("latin-1") if isinstance(content_type, str) else content_type
    kind = raw.split(b";")[0].strip().lower()
    if kind == _FORM:
        return "form"
    if kind == b"multipart/form-data":
        return "multipart"
    return "json"


def body_has_nul(body: bytes, content_type: bytes) -> bool:
    """Whether a body carries a NUL: raw, percent-encoded in a form, or escaped in JSON."""
    if b"\x00" in body:
        return True
    kind = body_kind(content_type)
    if kind == "form":
        return _PERCENT_NUL in body
    if kind == "multipart":
        return False  # its fields are raw bytes: a NUL in one is a raw NUL, checked above
    return _JSON_NUL.search(body) is not None


_JSON_PARSED_IN_A_THREAD = 64 * 1024  # larger bodies are checked off the event loop


class _Ambiguous(ValueError):
    pass


def _one_value_per_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Ambiguous(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _Ambiguous(f"{name} is not a JSON number")


def _nesting(body: bytes) -> int:
    """How deep the brackets of a JSON text nest, strings left out."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def json_body_problem(body: bytes) -> str | None:
    """Why a JSON body is refused, or None (also for a body that is not JSON at all: the route
    answers that one)."""
    if _nesting(body) > MAX_DEPTH + 1:  # the body's own object is one level
        return f"the JSON body is nested more than {MAX_DEPTH} levels deep"
    try:
        json.loads(body, object_pairs_hook=_one_value_per_key, parse_constant=_no_constant)
    except _Ambiguous as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None
    return None


class RequestLimits:
    """Pure ASGI middleware: refuses a NUL in the path or query string at once, and a declared
    Content-Length over the limit; otherwise reads the body (at most the limit plus one byte),
    checks it, then replays it to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", "") or query_has_nul(scope.get("query_string", b"")):
            await self._refuse(send, 422, NUL_DETAIL)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers") or []:
            headers.setdefault(name, value)  # the first of a repeated header, as Starlette reads it
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._refuse(send, 400, "invalid Content-Length")
                return
            if declared > self.max_bytes:
                await self._refuse(send, 413, f"request body larger than {self.max_bytes} bytes")
                return
        messages: list[Message] = []
        body = bytearray()
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(send, 413, f"request body larger than {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        content_type = headers.get(b"content-type", b"")
        if body_has_nul(bytes(body), content_type):
            await self._refuse(send, 422, NUL_DETAIL)
            return
        if body and body_kind(content_type) == "json":
            raw = bytes(body)
            if len(raw) > _JSON_PARSED_IN_A_THREAD:
                problem = await run_in_threadpool(json_body_problem, raw)
            else:
                problem = json_body_problem(raw)
            if problem is not None:
                await self._refuse(send, 422, problem)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send: Any, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
