"""Security headers on every answer of the API and the monitor: a content security policy that
lets pages run only the engine's own scripts and style sheets, no framing, no content-type
sniffing, no referrer sent to other sites.

The Swagger UI page (and its OAuth2 redirect page) starts itself with an inline script: on those
pages alone, each inline script is allowed by its SHA-256 hash, computed from the page served.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = (
    "default-src 'self'; script-src 'self'{scripts}; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
FIXED = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
_INLINE = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def policy(inline_scripts: Iterable[bytes] = ()) -> str:
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'" for script in inline_scripts
    )
    return POLICY.format(scripts=hashes)


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers to every HTTP answer (streams too); the pages at
    ``hashed_paths`` are read whole first, for the hashes of their inline scripts."""

    def __init__(self, app: ASGIApp, hashed_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.hashed = {path.rstrip("/") for path in hashed_paths}
        self.plain = [*FIXED, (b"content-security-policy", policy().encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path", "").rstrip("/") in self.hashed:
            await self._hashed(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*_without(message.get("headers", [])), *self.plain]
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _hashed(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        body = bytearray()

        async def held(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                scripts = [match.group(1) for match in _INLINE.finditer(bytes(body))]
                headers = [
                    *_without(start.get("headers", [])),
                    *FIXED,
                    (b"content-security-policy", policy(scripts).encode()),
                ]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": bytes(body)})
                return
            await send(message)

        await self.app(scope, receive, held)


def _without(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The answer's own headers, but for those this middleware sets."""
    ours = {name for name, _ in FIXED} | {b"content-security-policy"}
    return [(name, value) for name, value in headers if name.lower() not in ours]
