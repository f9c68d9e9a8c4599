"""Signing in to the monitor as its own sign-in page does: the form's token (bound to the login
form's cookie) sent back with the page's origin."""

from __future__ import annotations

import re
from typing import Any

import httpx

LOGIN_TOKEN = re.compile(r'<input type="hidden" name="csrf" value="([0-9a-f]+)">')


def login_token(client: Any) -> str:
    """The sign-in form's token (the client keeps the form's cookie); empty if it has none."""
    page = client.get("/ui/login")
    assert page.status_code == 200, page.text[:500]
    found = LOGIN_TOKEN.search(page.text)
    return found.group(1) if found else ""


def post_login(client: Any, origin: str | None = None, **fields: str) -> httpx.Response:
    """POST /ui/login with ``fields`` (username, password, next), as the page's form would."""
    token = login_token(client)
    sent_from = origin or str(client.base_url).rstrip("/")
    return client.post(  # type: ignore[no-any-return]
        "/ui/login", data={**fields, "csrf": token}, headers={"Origin": sent_from}, follow_redirects=False
    )
