"""What every request must satisfy before the app sees it: credentials before its body is read
where the route needs them (401: an access token, or the monitor's session; a body sent without
them is never read nor checked), a body no larger than the configured
limit (413), no NUL character in its path, query string or body (422), and a JSON body that
means one thing (422): no key twice in an object (the YAML loader refuses duplicates too, and
JSON parsers disagree on which one wins), no ``NaN`` or ``Infinity``, nested no deeper than the
engine stores (:data:`~workflow_engine.core.payloads.MAX_DEPTH`, checked before parsing, so
that no body can exhaust the parser's recursion). Every check runs in C (bytes and regular
expression searches, the json module's scanner): a 1 MiB body costs a few milliseconds.

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
# the routes whose request bodies are read without credentials: they are how one gets them
PUBLIC_BODIES = frozenset({"/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/ui/login"})
UNAUTHENTICATED = "not authenticated: send an access token (Authorization: Bearer) with a request body"


class _Ambiguous(ValueError):
    pass


def _one_value_per_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # (in C: only an object with a key twice is looked at again)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Ambiguous(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return result


def _no_constant(name: str) -> Any:
    raise _Ambiguous(f"{name} is not a JSON number")


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")


def nested_deeper(text: bytes, limit: int) -> bool:
    """Whether the brackets of a JSON text (its strings left out) nest deeper than ``limit``
    levels, counted in C: each pass drops the innermost pairs, one level. A text whose brackets
    do not pair (not JSON) counts its unclosed ones too, so that no text the parser would recurse
    into deeper than ``limit`` passes."""
    if not _deeper(text.translate(_BRACKETS, _NOT_BRACKETS), limit):
        return False  # (even counting the brackets inside strings: most texts end here)
    return _deeper(_STRING.sub(b"", text).translate(_BRACKETS, _NOT_BRACKETS), limit)


def _deeper(skeleton: bytes, limit: int) -> bool:
    levels = 0
    while skeleton:
        if b"[" * (limit - levels + 1) in skeleton:
            return True
        inner = skeleton.replace(b"[]", b"")
        if len(inner) == len(skeleton):  # only unpaired brackets left
            return levels + inner.count(b"[") > limit
        levels, skeleton = levels + 1, inner
    return levels > limit


def json_body_problem(body: bytes) -> str | None:
    """Why a JSON body is refused, or None (also for a body that is not JSON at all: the route
    answers that one)."""
    if nested_deeper(body, MAX_DEPTH + 1):  # the body's own object is one level
        return f"the JSON body is nested more than {MAX_DEPTH} levels deep"
    try:
        json.loads(body, object_pairs_hook=_one_value_per_key, parse_constant=_no_constant)
    except _Ambiguous as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None
    return None


def sends_a_body(method: str, headers: dict[bytes, bytes]) -> bool:
    """Whether a request comes with a body to read."""
    length = headers.get(b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return b"transfer-encoding" in headers or method in ("POST", "PUT", "PATCH")


def credentialed(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """Whether a request carries what its route checks before anything else: a valid access token,
    or under /ui the monitor's session (a valid refresh token in its cookie). Only signatures and
    expiry are checked here (no database): the route checks the rest."""
    tokens = getattr(getattr(scope.get("app"), "state", None), "tokens", None)
    if tokens is None:  # (not the engine's app: nothing to check with)
        return True
    from workflow_engine.errors import AuthenticationFailed

    try:
        if scope.get("path", "").startswith("/ui/"):
            from http.cookies import SimpleCookie

            from workflow_engine.ui.session import COOKIE

            cookies: SimpleCookie = SimpleCookie()
            cookies.load(headers.get(b"cookie", b"").decode("latin-1"))
            held = cookies.get(COOKIE)
            if held is None:
                return False
            tokens.verify(held.value, "refresh")
            return True
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        tokens.verify(token.strip(), "access")
    except (AuthenticationFailed, ValueError):
        return False
    return True


class RequestLimits:
    """Pure ASGI middleware: refuses a NUL in the path or query string at once, and a declared
    Content-Length over the limit; refuses a body sent without credentials to a route that needs
    them before reading it; otherwise reads the body (at most the limit plus one byte), checks
    it, then replays it to the app."""

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
        path = scope.get("path", "")
        if (
            path not in PUBLIC_BODIES
            and sends_a_body(scope.get("method", ""), headers)
            and not credentialed(scope, headers)
        ):
            await self._refuse(send, 401, UNAUTHENTICATED, [(b"www-authenticate", b"Bearer")])
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
    async def _refuse(
        send: Any, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *(extra or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
