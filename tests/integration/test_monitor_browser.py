"""The monitor in a real headless Chromium (Debian's package, through Playwright), served by a
real `wfe api` process with real workers, Redis and PostgreSQL, the network cut off: signing
in, a step changing status without a reload, cancelling with the button, a human task's form
(a bad value refused on the page), a map, a viewer without buttons, and a 5,000-wide fan-out
beside a 10,000-item map. Every page is photographed, light and dark (``WFE_TEST_SCREENSHOTS``
says where; the README's are in docs/ui)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.api.test_monitor_pages import ORDER
from tests.conftest import unavailable
from tests.integration.test_api_server import PASSWORD, Server, server  # noqa: F401  (the fixture)
from tests.support import browser
from tests.support.polling import poll

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NAP = {
    "name": "nap",
    "version": "1.0.0",
    "steps": [{"name": "nap", "agent": "slow", "config": {"seconds": 60, "cooperative": True}}],
}
MAPPED = {
    "name": "mapped",
    "version": "1.0.0",
    "steps": [
        {"name": "list", "agent": "lister"},
        {"name": "each", "type": "map", "items": "steps.list.items", "agent": "mapper", "max_concurrency": 4},
        {"name": "after", "agent": "echo"},
    ],
}


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("WFE_TEST_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture
def page(server: Server) -> Iterator[Page]:  # noqa: F811
    if not os.path.exists(browser.CHROMIUM):
        unavailable("no Chromium (Debian package chromium) at /usr/bin/chromium")
    origin = str(server.http.base_url).rstrip("/")
    with browser.offline_page(origin) as (opened, seen):
        opened.on("dialog", lambda dialog: dialog.accept())
        yield opened
    assert seen.refused == [], seen.refused  # every asset is the engine's own


def sign_in(page: Page, server: Server, user: str) -> None:  # noqa: F811
    origin = str(server.http.base_url).rstrip("/")
    page.goto(f"{origin}/ui/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/executions")


def photograph(page: Page, shots: Path, name: str, full_page: bool = True) -> None:
    """The page in light, then in dark (all of it, or its first screen)."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=str(shots / f"{name}-{scheme}.png"), full_page=full_page)
    page.emulate_media(color_scheme="light")


def test_a_step_changes_on_the_page_without_a_reload_and_a_person_completes_it_through_its_form(
    server: Server,  # noqa: F811
    page: Page,
    shots: Path,
) -> None:
    origin = str(server.http.base_url).rstrip("/")
    server.register(ORDER)
    page.goto(f"{origin}/ui/login")
    photograph(page, shots, "login")
    sign_in(page, server, "alice")
    execution = server.start("order")
    page.goto(f"{origin}/ui/executions/{execution}")
    page.wait_for_selector('[data-step="approve"][data-status="waiting"]', timeout=30_000)
    page.evaluate("window.__notReloaded = true")
    # the task is completed elsewhere (the API): the page follows without a reload
    done = server.post(f"/executions/{execution}/steps/approve/complete", json={"data": {"amount": 2}})
    assert done.status_code == 200, done.text
    page.wait_for_selector('[data-step="approve"][data-status="succeeded"]', timeout=30_000)
    page.wait_for_selector(f'[data-execution="{execution}"][data-status="completed"]', timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    photograph(page, shots, "execution")

    second = server.start("order")
    page.goto(f"{origin}/ui/human-tasks")
    form = page.locator(f'form[data-human-task="approve"][data-execution-id="{second}"]')
    form.wait_for(timeout=30_000)
    photograph(page, shots, "human-tasks")
    form.locator("input[name=amount]").fill("none")
    form.locator("button[type=submit]").click()
    refused = page.locator(f'form[data-execution-id="{second}"] [data-refused]')
    refused.wait_for(timeout=10_000)
    assert "amount" in refused.inner_text()
    assert server.get(f"/executions/{second}").json()["status"] == "waiting"
    page.locator(f'form[data-execution-id="{second}"] input[name=amount]').fill("5")
    page.locator(f'form[data-execution-id="{second}"] button[type=submit]').click()
    page.wait_for_selector("[role=status]", timeout=10_000)
    poll(lambda: server.get(f"/executions/{second}").json()["status"] == "completed", 30, "the completion")
    page.goto(f"{origin}/ui/executions")
    page.evaluate("window.__notReloaded = true")
    third = server.start("order")  # the list follows: the new row comes without a reload
    page.wait_for_selector(f'[data-execution-row="{third}"]', timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    photograph(page, shots, "executions")


def test_the_cancel_button_cancels_a_running_execution(
    server: Server,  # noqa: F811
    page: Page,
) -> None:
    origin = str(server.http.base_url).rstrip("/")
    server.register(NAP)
    sign_in(page, server, "alice")
    execution = server.start("nap")
    page.goto(f"{origin}/ui/executions/{execution}")
    page.wait_for_selector('[data-step="nap"][data-status="running"]', timeout=30_000)
    page.click('button[data-action="cancel"]')
    page.wait_for_selector(f'[data-execution="{execution}"][data-status="cancelled"]', timeout=30_000)
    assert server.get(f"/executions/{execution}").json()["status"] == "cancelled"
    assert page.locator('button[data-action="cancel"]').count() == 0


def test_a_map_is_followed_and_a_viewer_sees_no_button(
    server: Server,  # noqa: F811
    page: Page,
    shots: Path,
) -> None:
    origin = str(server.http.base_url).rstrip("/")
    server.register(MAPPED)
    sign_in(page, server, "alice")
    execution = server.start("mapped", input_data={"n": 30})
    page.goto(f"{origin}/ui/executions/{execution}")
    page.wait_for_selector(f'[data-execution="{execution}"][data-status="completed"]', timeout=60_000)
    node = page.locator('[data-step="each"]')
    assert node.get_attribute("data-status") == "succeeded"
    assert page.locator("[data-item]").count() == 30  # the items, paged (30 fit on one page)
    photograph(page, shots, "map")
    for name in ("schedules", "errors", "workers"):
        page.goto(f"{origin}/ui/{name}")
        page.wait_for_selector("h1")
        photograph(page, shots, name)
    steps_queue = server.cluster.settings.steps_queue  # the workers page reads the broker too
    assert page.locator(f'[data-queue="{steps_queue}"]').count() == 1
    assert page.locator(".error").count() == 0, page.locator(".error").all_inner_texts()
    page.goto(f"{origin}/ui/executions")
    page.click("form.who button")  # sign out
    page.wait_for_url("**/ui/login")

    vic = server.cluster.engine.store.get_user("vic")
    own = server.cluster.engine.start("order", owner_id=vic.id).id  # a viewer's own, started for it
    sign_in(page, server, "vic")
    page.goto(f"{origin}/ui/executions/{own}")
    page.wait_for_selector('[data-step="approve"][data-status="waiting"]', timeout=30_000)
    assert page.locator("[data-action]").count() == 0
    assert page.locator("[data-human-task]").count() == 0
    page.goto(f"{origin}/ui/executions/{execution}")  # alice's: not the viewer's to see
    assert "Not found" in page.content()


@pytest.mark.long
@pytest.mark.timeout(300)  # the map alone takes about 100 s on two cores; its own wait allows 240
def test_a_five_thousand_wide_fan_out_and_a_ten_thousand_item_map_render_folded(
    server: Server,  # noqa: F811
    page: Page,
    shots: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    origin = str(server.http.base_url).rstrip("/")
    middle = [f"s{i}" for i in range(5000)]
    wide = {
        "name": "wide5000",
        "version": "1.0.0",
        "steps": [
            {"name": "gate", "type": "human"},  # holds the fan-out: its 5,000 wait, the map runs
            *({"name": name, "agent": "echo"} for name in middle),
            {"name": "end", "agent": "echo"},
            {"name": "list", "agent": "lister"},
            {"name": "each", "type": "map", "items": "steps.list.items", "agent": "mapper"},
        ],
        "edges": [{"from": "gate", "to": s} for s in middle]
        + [{"from": s, "to": "end"} for s in middle]
        + [{"from": "list", "to": "each"}],
    }
    server.register(wide)
    sign_in(page, server, "alice")
    execution = server.start("wide5000", input_data={"n": 10_000})
    store = server.cluster.engine.store
    poll(
        lambda: [r.status for r in store.step_runs(execution) if r.step_name == "each"] == ["succeeded"],
        240,
        "the 10,000-item map",
    )
    began = time.perf_counter()
    response = page.goto(f"{origin}/ui/executions/{execution}")
    page.wait_for_selector('[data-fold="5000"]', timeout=60_000)
    rendered = time.perf_counter() - began
    assert response is not None and response.ok
    size = len(response.body())
    assert page.locator("svg g.node").count() == 5  # gate, the folded 5,000, end, list, the map
    assert page.locator('[data-step="each"]').get_attribute("data-status") == "succeeded"
    assert page.locator("[data-item]").count() == 50  # the map's items in pages
    assert page.locator("[data-step-row]").count() == 100  # the steps in pages
    photograph(page, shots, "wide", full_page=False)
    page.click("[data-steps-next]")
    page.wait_for_url("**steps=1")
    assert page.locator("[data-step-row]").count() == 100
    with capsys.disabled():
        print(
            f"\nmonitor: the page of a 5,000-wide fan-out and a 10,000-item map is {size:,} bytes,"
            f" shown in {rendered * 1000:.0f} ms"
        )
