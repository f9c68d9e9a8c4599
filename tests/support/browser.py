"""A real headless Chromium (Debian's package, driven by Playwright) cut off from the network.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium``. Every host name
but the loopback address fails to resolve, and every request the page makes to anything but
the server under test is aborted and recorded, so a test can assert that a page needs nothing
from outside.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@dataclass
class Offline:
    """What the page asked of the outside world (all of it refused)."""

    origin: str
    refused: list[str] = field(default_factory=list)


@contextmanager
def offline_page(origin: str) -> Iterator[tuple[Page, Offline]]:
    """A page that may reach only ``origin`` (``http://127.0.0.1:PORT``)."""
    from playwright.sync_api import Route, sync_playwright

    seen = Offline(origin)
    allowed = urlsplit(origin).netloc

    def guard(route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.netloc == allowed:
            route.continue_()
        else:
            seen.refused.append(url)
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", guard)
            yield context.new_page(), seen
        finally:
            browser.close()
