"""What one account can still do to everyone else, each over HTTP against a real `wfe api` (real
worker, coordinator, Redis and PostgreSQL), the monitor's in a real headless Chromium: signing a
visitor in from another site, a disabled or demoted user's tokens and schedules, users'
administration (REST and `wfe users`), forged audit lines and client addresses, a brake on
successful logins, words put on the monitor by a link, a stolen refresh token's login, security
headers, and a human task assigned to someone who does not own its execution."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, unavailable
from tests.integration.test_api_server import PASSWORD, Server, free_port, server, wfe_command
from tests.support import browser
from tests.support.polling import poll
from tests.support.signin import login_token, post_login
from workflow_engine.processes import LocalCluster
from workflow_engine.store import schema as t
from workflow_engine.users import create_user

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["server"]  # the module's own `wfe api`, cluster and users (alice, bob, vic, root)
pytestmark = [pytest.mark.slow, pytest.mark.long]
API = "/api/v1"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')


def add_user(server: Server, name: str, role: str = "operator") -> None:
    create_user(server.cluster.engine.store, name, PASSWORD, role)


def login(http: httpx.Client, user: str, password: str = PASSWORD) -> httpx.Response:
    return http.post(f"{API}/auth/token", json={"username": user, "password": password})


def pair(http: httpx.Client, user: str) -> dict[str, str]:
    answer = login(http, user)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def reads(http: httpx.Client, token: str) -> int:
    """The status of a plain read with ``token``."""
    return http.get(f"{API}/executions", headers=bearer(token)).status_code


def refreshes(http: httpx.Client, refresh_token: str) -> httpx.Response:
    return http.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})


def one_step(name: str) -> dict[str, Any]:
    return {"name": name, "version": "1.0.0", "steps": [{"name": "a", "agent": "echo"}]}


@pytest.fixture(scope="module")
def proxied(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A second `wfe api` on the same database, behind a proxy at 127.0.0.1 (its X-Forwarded-For
    believed), braking logins after 3 successes per user."""
    settings = server.cluster.settings.model_copy(
        update={"trusted_proxies": ("127.0.0.1",), "login_successes_per_user": 3}
    )
    processes = LocalCluster(settings, tmp_path_factory.mktemp("proxied-api"), cwd=ROOT)
    port = free_port()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        processes.start_api(port)

        def healthy() -> bool:
            try:
                return client.get("/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        poll(healthy, 60, "the proxied API to come up")
        yield client
    finally:
        client.close()
        processes.stop()


def monitor_client(server: Server, user: str) -> tuple[httpx.Client, str]:
    """A client of its own signed in to the monitor as ``user``, and its CSRF token."""
    client = httpx.Client(base_url=str(server.http.base_url), timeout=30)
    answer = post_login(client, username=user, password=PASSWORD)
    assert answer.status_code == 303, answer.text
    found = CSRF_META.search(client.get("/ui/executions").text)
    assert found
    return client, found.group(1)


# 8: login CSRF


def test_a_sign_in_posted_from_another_site_is_refused_even_with_a_form_token_of_its_own(
    server: Server,
) -> None:
    origin = str(server.http.base_url).rstrip("/")
    with httpx.Client(base_url=origin, timeout=30) as victim:
        bare = victim.post(  # another site's form, as in the finding
            "/ui/login",
            data={"username": "bob", "password": PASSWORD},
            headers={"Origin": "http://evil.example"},
            follow_redirects=False,
        )
        assert bare.status_code == 403 and "wfe_session" not in bare.cookies, bare.text
    with httpx.Client(base_url=origin, timeout=30) as attacker:  # the attacker's own form
        token = login_token(attacker)
        nonce = attacker.cookies.get("wfe_login")
    assert token and nonce
    with httpx.Client(base_url=origin, timeout=30) as victim:
        # the attacker's pair planted in the victim's browser (a sibling site can set a cookie for
        # the host), posted from another origin: the origin refuses it
        victim.cookies.set("wfe_login", nonce, path="/ui/login")
        planted = victim.post(
            "/ui/login",
            data={"username": "bob", "password": PASSWORD, "csrf": token},
            headers={"Origin": "http://127.0.0.1:9"},
            follow_redirects=False,
        )
        assert planted.status_code == 403 and "wfe_session" not in planted.cookies, planted.text
        no_origin = victim.post(
            "/ui/login", data={"username": "bob", "password": PASSWORD, "csrf": token}, follow_redirects=False
        )
        assert no_origin.status_code == 403
        victim.cookies.clear()
        own = post_login(victim, username="bob", password=PASSWORD)  # the monitor's own page
        assert own.status_code == 303 and victim.cookies.get("wfe_session")
        # a Referer of the monitor's own stands for a missing Origin
        victim.cookies.clear()
        token = login_token(victim)
        referred = victim.post(
            "/ui/login",
            data={"username": "bob", "password": PASSWORD, "csrf": token},
            headers={"Referer": f"{origin}/ui/login"},
            follow_redirects=False,
        )
        assert referred.status_code == 303


@pytest.fixture
def chromium() -> Iterator[None]:
    if not os.path.exists(browser.CHROMIUM):
        unavailable("no Chromium (Debian package chromium) at /usr/bin/chromium")
    yield


@pytest.mark.browser
def test_a_page_of_another_site_cannot_swap_a_signed_in_visitors_session_in_chromium(
    server: Server, chromium: None
) -> None:
    from playwright.sync_api import Route, sync_playwright

    origin = str(server.http.base_url).rstrip("/")
    evil = f"http://127.0.0.1:{free_port()}"  # same site, another origin: shares the cookies
    attack = (
        f'<form method="post" action="{origin}/ui/login">'
        f'<input name="username" value="bob"><input name="password" value="{PASSWORD}">'
        '<input name="next" value="/ui/executions"></form><script>document.forms[0].submit()</script>'
    )

    def route(route: Route) -> None:
        if route.request.url.startswith(evil):
            route.fulfill(status=200, content_type="text/html", body=attack)
        elif route.request.url.startswith(origin):
            route.continue_()
        else:
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        chrome = playwright.chromium.launch(executable_path=browser.CHROMIUM, args=browser.ARGS)
        try:
            context = chrome.new_context()
            context.route("**/*", route)
            page = context.new_page()
            page.goto(f"{origin}/ui/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/ui/executions")
            with page.expect_navigation(url=f"{origin}/**"):  # the attack's form posts
                page.goto(f"{evil}/prize")
            page.goto(f"{origin}/ui/executions")
            assert page.locator("form.who span").inner_text().startswith("alice")
        finally:
            chrome.close()


# 9: users disabled, demoted, deleted; passwords; revoking; their schedules


def test_a_disabled_user_is_refused_at_once_and_their_schedules_are_paused_with_why(server: Server) -> None:
    add_user(server, "dora")
    server.register(one_step("dora-flow"), "dora")
    created = server.post(
        "/schedules", "dora", json={"name": "dora-hourly", "workflow": "dora-flow", "every": 3600}
    )
    assert created.status_code == 201, created.text
    tokens = pair(server.http, "dora")
    assert reads(server.http, tokens["access_token"]) == 200
    answer = server.http.patch(f"{API}/users/dora", json={"disabled": True}, headers=server.auth("root"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["disabled"] is True and answer.json()["paused_schedules"] == ["dora-hourly"]
    assert reads(server.http, tokens["access_token"]) == 401
    assert refreshes(server.http, tokens["refresh_token"]).status_code == 401
    assert login(server.http, "dora").status_code == 401
    schedule = server.get("/schedules/dora-hourly", "root", params={"owner": "dora"}).json()
    assert schedule["paused"] is True
    paused = schedule["changes"][0]
    assert paused["action"] == "paused" and paused["actor"] == "admin root"
    assert "'dora' was disabled" in paused["details"]["reason"]
    enabled = server.http.patch(f"{API}/users/dora", json={"disabled": False}, headers=server.auth("root"))
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    assert reads(server.http, tokens["access_token"]) == 401  # enabled again: old tokens stay refused
    assert reads(server.http, pair(server.http, "dora")["access_token"]) == 200
    assert (
        server.get("/schedules/dora-hourly", "root", params={"owner": "dora"}).json()["paused"] is True
    )  # resumed by hand only


def test_a_viewers_schedule_is_paused_and_the_scheduler_starts_nothing_for_it_even_unpaused(
    server: Server,
) -> None:
    add_user(server, "erin")
    server.register(one_step("erin-flow"), "erin")
    created = server.post(
        "/schedules", "erin", json={"name": "erin-often", "workflow": "erin-flow", "every": 5}
    )
    assert created.status_code == 201, created.text
    demoted = server.http.patch(f"{API}/users/erin", json={"role": "viewer"}, headers=server.auth("root"))
    assert demoted.status_code == 200, demoted.text
    assert demoted.json()["role"] == "viewer" and demoted.json()["paused_schedules"] == ["erin-often"]
    # its row made to run behind the engine's back (a restored backup, say): the scheduler asks
    with server.cluster.engine.store.transaction() as tx:
        tx.execute(sa.update(t.schedules).where(t.schedules.c.name == "erin-often").values(paused=False))

    def refused() -> list[dict[str, Any]]:
        fires = server.get("/schedules/erin-often", "root", params={"owner": "erin"}).json()["skipped_fires"]
        return [f for f in fires if f["action"] == "failed"]

    failed = poll(refused, 30, "a fire time of erin-often refused")
    assert "viewer and may not start workflows" in failed[0]["reason"]
    started = server.get("/executions", "root", params={"workflow": "erin-flow"}).json()["items"]
    assert started == []


def test_a_user_who_owns_executions_is_not_deleted_and_one_who_owns_nothing_is(server: Server) -> None:
    add_user(server, "fay")
    server.register(one_step("fay-flow"), "fay")
    server.start("fay-flow", "fay")
    root = server.auth("root")
    refused = server.http.delete(f"{API}/users/fay", headers=root)
    assert refused.status_code == 409 and "disable" in refused.json()["detail"], refused.text
    add_user(server, "gus", "viewer")
    tokens = pair(server.http, "gus")
    assert server.http.delete(f"{API}/users/gus", headers=root).status_code == 204
    assert reads(server.http, tokens["access_token"]) == 401
    assert login(server.http, "gus").status_code == 401
    names = [u["username"] for u in server.http.get(f"{API}/users", headers=root).json()]
    assert "fay" in names and "gus" not in names and "system" not in names
    for bad, status in (
        (server.http.delete(f"{API}/users/nobody", headers=root), 404),
        (server.http.patch(f"{API}/users/fay", json={}, headers=root), 422),
        (server.http.patch(f"{API}/users/fay", json={"role": "king"}, headers=root), 422),
        (server.http.patch(f"{API}/users/fay", json={"disabled": "maybe"}, headers=root), 422),
        (server.http.post(f"{API}/users/fay/password", json={"password": "short"}, headers=root), 422),
        (server.http.patch(f"{API}/users/bob", json={"disabled": True}, headers=server.auth("alice")), 403),
        (server.http.get(f"{API}/users", headers=server.auth("vic")), 403),
    ):
        assert bad.status_code == status and bad.json()["detail"], (status, bad.text)


def test_a_new_password_or_a_revoke_refuses_every_token_issued_before(server: Server) -> None:
    add_user(server, "hal")
    root = server.auth("root")
    first = pair(server.http, "hal")
    changed = server.http.post(
        f"{API}/users/hal/password", json={"password": "another long password"}, headers=root
    )
    assert changed.status_code == 200, changed.text
    assert reads(server.http, first["access_token"]) == 401
    assert refreshes(server.http, first["refresh_token"]).status_code == 401
    assert login(server.http, "hal").status_code == 401
    second = login(server.http, "hal", "another long password").json()
    assert reads(server.http, second["access_token"]) == 200
    assert server.http.post(f"{API}/users/hal/revoke", headers=root).status_code == 200
    assert reads(server.http, second["access_token"]) == 401
    assert refreshes(server.http, second["refresh_token"]).status_code == 401


def test_wfe_users_lists_disables_enables_changes_roles_and_passwords_revokes_and_deletes(
    server: Server,
) -> None:
    settings = server.cluster.settings
    add_user(server, "ivy")
    tokens = pair(server.http, "ivy")

    def users(*args: str, stdin: str | None = None) -> Any:
        done = wfe_command(settings, "users", *args, "--json", stdin=stdin)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert "ivy" in [u["username"] for u in users("list")]
    assert users("disable", "ivy")["disabled"] is True
    assert reads(server.http, tokens["access_token"]) == 401
    assert users("enable", "ivy")["disabled"] is False
    assert users("role", "ivy", "viewer")["role"] == "viewer"
    assert users("passwd", "ivy", "--password-stdin", stdin="a brand new password\n")["username"] == "ivy"
    assert login(server.http, "ivy", "a brand new password").status_code == 200
    assert users("revoke", "ivy")["username"] == "ivy"
    text = wfe_command(settings, "users", "disable", "ivy")
    assert text.returncode == 0 and text.stdout.splitlines()[0].startswith("database ")
    assert users("delete", "ivy") == {"deleted": "ivy"}
    add_user(server, "jay")
    server.register(one_step("jay-flow"), "jay")
    server.start("jay-flow", "jay")
    for args, stdin in (
        (("role", "nobody", "admin"), None),
        (("disable", "nobody"), None),
        (("role", "alice", "king"), None),
        (("passwd", "alice", "--password-stdin"), "short\n"),
        (("delete", "jay"), None),  # owns executions: refused, disable suggested
    ):
        done = wfe_command(settings, "users", *args, stdin=stdin)
        assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert "Traceback" not in done.stderr


# L9: forged audit lines, X-Forwarded-For


def test_a_line_break_in_a_username_forges_no_line_of_the_audit(server: Server) -> None:
    forged = "mallory\r\n2026-01-01T00:00:00+00:00  401  root  10.9.9.9  POST /api/v1/executions"
    assert login(server.http, forged, "wrong password").status_code == 401
    shown = wfe_command(server.cluster.settings, "audit", "--limit", "20")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert not [line for line in lines if line.startswith("2026-01-01")], lines
    assert [line for line in lines if "mallory\\r\\n2026-01-01" in line], lines
    rows = server.get("/audit", "root").json()
    assert rows[0]["username"].startswith("mallory\\r\\n")


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(server: Server, proxied: httpx.Client) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.7"}
    direct = server.http.post(
        f"{API}/auth/token", json={"username": "xff-direct", "password": "wrong password"}, headers=spoofed
    )
    behind = proxied.post(
        f"{API}/auth/token", json={"username": "xff-proxied", "password": "wrong password"}, headers=spoofed
    )
    assert direct.status_code == behind.status_code == 401
    rows = {row["username"]: row["address"] for row in server.get("/audit", "root").json()}
    assert rows["xff-direct"] == "127.0.0.1"  # by default no proxy is trusted, loopback neither
    assert rows["xff-proxied"] == "203.0.113.7"  # WFE_TRUSTED_PROXIES=127.0.0.1


# L10: successful logins braked


def test_successful_logins_of_one_user_are_braked_and_others_log_in(
    server: Server, proxied: httpx.Client
) -> None:
    add_user(server, "kim")
    add_user(server, "lee")
    for _ in range(3):  # WFE_LOGIN_SUCCESSES_PER_USER=3 on the proxied API
        assert login(proxied, "kim").status_code == 200
    braked = login(proxied, "kim")
    assert braked.status_code == 429 and "too many logins" in braked.json()["detail"], braked.text
    assert 0 < int(braked.headers["retry-after"]) <= 300
    assert login(proxied, "lee").status_code == 200
    assert login(server.http, "lee").status_code == 200  # (the default allows 60 a window)


# L13: words put on the monitor by a link


def test_a_link_cannot_put_words_on_a_monitor_page_and_a_changes_own_message_shows(server: Server) -> None:
    client, csrf = monitor_client(server, "alice")
    spoof = "Your session expired, sign in again at evil.example"
    try:
        for path in ("/ui/executions", "/ui/human-tasks"):
            page = client.get(path, params={"message": spoof})
            assert page.status_code == 200 and "evil.example" not in page.text
        server.register(
            {
                "name": "napping",
                "version": "1.0.0",
                "steps": [{"name": "nap", "agent": "slow", "config": {"seconds": 60, "cooperative": True}}],
            }
        )
        execution = server.start("napping")
        done = client.post(f"/ui/executions/{execution}/cancel", data={"csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303 and "message" not in done.headers["location"]
        landed = client.get(done.headers["location"])
        assert "cancel: done" in landed.text
        assert "cancel: done" not in client.get(done.headers["location"]).text  # shown once
    finally:
        client.close()


# L14: a stolen refresh token's login, logging out everywhere


def test_a_spent_refresh_token_presented_again_revokes_every_token_of_its_login(server: Server) -> None:
    add_user(server, "max")
    stolen = pair(server.http, "max")
    elsewhere = pair(server.http, "max")  # another login of the same user
    owner = refreshes(server.http, stolen["refresh_token"])  # the owner refreshes first
    assert owner.status_code == 200
    assert refreshes(server.http, stolen["refresh_token"]).status_code == 401  # the thief's try
    assert refreshes(server.http, owner.json()["refresh_token"]).status_code == 401
    assert reads(server.http, owner.json()["access_token"]) == 401
    assert reads(server.http, stolen["access_token"]) == 401
    assert reads(server.http, elsewhere["access_token"]) == 200  # another login is not touched
    assert refreshes(server.http, elsewhere["refresh_token"]).status_code == 200


def test_logout_all_refuses_every_token_of_the_caller(server: Server) -> None:
    add_user(server, "ned")
    first, second = pair(server.http, "ned"), pair(server.http, "ned")
    out = server.http.post(f"{API}/auth/logout-all", headers=bearer(first["access_token"]))
    assert out.status_code == 204, out.text
    for tokens in (first, second):
        assert reads(server.http, tokens["access_token"]) == 401
        assert refreshes(server.http, tokens["refresh_token"]).status_code == 401
    assert reads(server.http, pair(server.http, "ned")["access_token"]) == 200
    assert server.http.post(f"{API}/auth/logout-all").status_code == 401


# L7: security headers


def check_headers(answer: httpx.Response) -> str:
    headers = answer.headers
    assert headers["x-frame-options"] == "DENY", answer.url
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    policy = headers["content-security-policy"]
    assert (
        "script-src 'self'" in policy and "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    )
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    return policy


def test_every_answer_of_the_api_and_the_monitor_carries_the_security_headers(server: Server) -> None:
    for path in (
        "/health",
        "/metrics",
        f"{API}/executions",
        f"{API}/nowhere",
        "/ui/login",
        "/ui/static/ui.css",
        "/api/openapi.json",
        "/api/docs/assets/swagger-ui.css",
    ):
        policy = check_headers(server.http.get(path))
        assert "sha256-" not in policy, path
    assert check_headers(server.get("/executions"))
    docs = server.http.get("/api/docs")
    policy = check_headers(docs)
    inline = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    assert inline
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy


@pytest.mark.browser
def test_the_monitor_and_the_docs_work_in_chromium_under_the_content_security_policy(
    server: Server, chromium: None, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("WFE_TEST_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    origin = str(server.http.base_url).rstrip("/")
    server.register(one_step("shown"))
    execution = server.start("shown")
    server.cluster.wait(execution)
    schema = server.http.get("/api/openapi.json").json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    with browser.offline_page(origin) as (page, seen):
        refused: list[str] = []
        page.on(
            "console",
            lambda message: (
                refused.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        page.goto(f"{origin}/ui/login")
        page.screenshot(path=str(shots / "login-with-csp.png"))
        sign_in(page, origin, "alice")
        page.goto(f"{origin}/ui/executions/{execution}")
        page.wait_for_selector(f'[data-execution="{execution}"][data-status="completed"]', timeout=30_000)
        page.goto(f"{origin}/api/docs")
        page.wait_for_function(
            f"document.querySelectorAll('.opblock').length >= {operations}", timeout=30_000
        )
        assert "Workflow Engine" in page.locator(".info .title").first.inner_text()
        page.screenshot(path=str(shots / "docs-with-csp.png"))
        framed = page.evaluate("async () => (await fetch('/ui/login')).headers.get('x-frame-options')")
        assert framed == "DENY"
        assert refused == [], refused
    assert seen.refused == []


def sign_in(page: Page, origin: str, user: str) -> None:
    page.goto(f"{origin}/ui/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/executions")


# a human task assigned to someone who does not own its execution


HANDOFF = {
    "name": "handoff",
    "version": "1.0.0",
    "steps": [
        {"name": "draft", "agent": "echo"},
        {"name": "approve", "type": "human", "assignees": ["bob"]},
        {"name": "review", "type": "human", "assignees": ["role:operator"]},
        {"name": "ship", "agent": "echo"},
    ],
    "edges": [
        {"from": "draft", "to": "approve"},
        {"from": "approve", "to": "review"},
        {"from": "review", "to": "ship"},
    ],
}


def test_an_assignee_sees_and_completes_a_task_of_another_users_execution_and_nothing_else_of_it(
    server: Server,
) -> None:
    add_user(server, "oli")  # an operator the tasks are not assigned to
    server.register(HANDOFF)
    execution = server.start("handoff", input_data={"secret": "for alice only"})

    def task_of(user: str, step: str) -> list[dict[str, Any]]:
        tasks = server.get("/human-tasks", user).json()
        return [task for task in tasks if task["execution_id"] == execution and task["step"] == step]

    assert poll(lambda: task_of("bob", "approve"), 30, "bob's task")[0]["assignees"] == ["bob"]
    assert task_of("oli", "approve") == [] and task_of("vic", "approve") == []
    assert server.get(f"/executions/{execution}", "bob").status_code == 404
    assert execution not in [
        item["execution_id"] for item in server.get("/executions", "bob").json()["items"]
    ]
    assert (
        server.post(f"/executions/{execution}/steps/approve/complete", "oli", json={"data": {}}).status_code
        == 404
    )
    done = server.post(f"/executions/{execution}/steps/approve/complete", "bob", json={"data": {"ok": True}})
    assert done.status_code == 200, done.text
    assert "for alice only" not in done.text and [s["name"] for s in done.json()["steps"]] == ["approve"]
    # the next task is for any operator, in the monitor: oli sees it there with its form, completes it
    client = httpx.Client(base_url=str(server.http.base_url), timeout=30)
    with client:
        assert post_login(client, username="oli", password=PASSWORD).status_code == 303
        form = f'data-human-task="review" data-execution-id="{execution}"'

        def tasks_page() -> str | None:
            page = client.get("/ui/human-tasks").text
            return page if form in page else None

        page = poll(tasks_page, 30, "oli's task in the monitor")
        csrf = CSRF_META.search(page)
        assert csrf
        completed = client.post(
            f"/ui/human-tasks/{execution}/review",
            data={"csrf": csrf.group(1), "__json__": "{}"},
            follow_redirects=False,
        )
        assert completed.status_code == 303, completed.text
        assert client.get(f"/ui/executions/{execution}").status_code == 404
    assert server.cluster.wait(execution).status == "completed"
