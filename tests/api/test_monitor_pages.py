"""The monitor's pages in-process on PostgreSQL: the session cookie, CSRF, roles and owners, the
landmarks, a human task's form, keyset pages, and a constant number of queries per page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.api.conftest import APPROVAL, HELLO, PASSWORD, Api
from tests.support.signin import post_login

ORDER = {
    "name": "order",
    "version": "1.0.0",
    "steps": [
        {"name": "draft", "agent": "echo"},
        {
            "name": "approve",
            "type": "human",
            "description": "Check the draft and say how many to ship",
            "input_schema": {
                "type": "object",
                "required": ["amount"],
                "properties": {"amount": {"type": "integer", "minimum": 1}, "note": {"type": "string"}},
            },
        },
        {"name": "ship", "agent": "echo"},
    ],
}


def signed_in(api: Api, user: str) -> tuple[TestClient, str]:
    """A client of its own with ``user``'s session, and the page's CSRF token."""
    client = TestClient(api.client.app)
    answer = post_login(client, username=user, password=PASSWORD)
    assert answer.status_code == 303, answer.text
    page = client.get("/ui/executions")
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert found, page.text[:500]
    return client, found.group(1)


def test_signing_in_sets_an_httponly_strict_cookie_and_a_wrong_password_is_refused_on_the_page(
    api: Api,
) -> None:
    client = TestClient(api.client.app)
    wrong = post_login(client, username="alice", password="nope")
    assert wrong.status_code == 401 and "wrong username or password" in wrong.text
    assert "wfe_session" not in wrong.cookies
    right = post_login(client, username="alice", password=PASSWORD, next="/ui/schedules")
    assert right.status_code == 303 and right.headers["location"] == "/ui/schedules"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    elsewhere = post_login(client, username="alice", password=PASSWORD, next="https://evil.example/")
    assert elsewhere.headers["location"] == "/ui/executions"  # never a redirect away


def test_without_a_session_a_page_sends_to_the_sign_in_and_a_logout_ends_the_session(api: Api) -> None:
    anonymous = TestClient(api.client.app)
    answer = anonymous.get("/ui/executions", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login?next=")
    client, csrf = signed_in(api, "alice")
    token = client.cookies.get("wfe_session")
    assert client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    again = TestClient(api.client.app)
    again.cookies.set("wfe_session", str(token), path="/ui")  # the old cookie, replayed
    assert again.get("/ui/executions", follow_redirects=False).status_code == 303


def test_the_execution_page_carries_the_landmarks_and_an_operators_buttons(api: Api) -> None:
    api.register(APPROVAL)
    api.harness.agent("echo")
    execution = api.start("approval")
    api.harness.work()
    client, _ = signed_in(api, "alice")
    page = client.get(f"/ui/executions/{execution}").text
    assert f'data-execution="{execution}" data-status="waiting"' in page
    assert 'data-step="draft" data-status="succeeded"' in page
    assert 'data-step="approve" data-status="waiting"' in page
    assert "waits for a person to complete it" in page  # why it is not running
    assert {"cancel", "retry", "pause"} <= set(re.findall(r'data-action="(\w+)"', page))
    viewer, _ = signed_in(api, "vic")
    assert viewer.get(f"/ui/executions/{execution}").status_code == 404  # not the viewer's
    bob, _ = signed_in(api, "bob")
    other = bob.get(f"/ui/executions/{execution}")
    assert other.status_code == 404 and "Not found" in other.text


def test_a_viewer_sees_no_control_and_its_posts_are_refused(api: Api) -> None:
    api.register(APPROVAL)
    api.harness.agent("echo")
    vic = api.harness.store.get_user("vic")
    execution = api.engine.start("approval", owner_id=vic.id).id  # (a viewer's own, started for it)
    api.harness.work()
    viewer, csrf = signed_in(api, "vic")
    page = viewer.get(f"/ui/executions/{execution}")
    assert page.status_code == 200 and 'data-step="approve" data-status="waiting"' in page.text
    assert "data-action" not in page.text
    assert "data-bulk" not in viewer.get("/ui/executions").text
    assert "data-human-task" not in viewer.get("/ui/human-tasks").text
    refused = viewer.post(f"/ui/executions/{execution}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert refused.status_code == 403
    assert api.engine.get(execution).status == "waiting"
    root, _ = signed_in(api, "root")
    assert "data-action" in root.get(f"/ui/executions/{execution}").text  # an admin's: buttons


def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(api: Api) -> None:
    api.register(APPROVAL)
    api.harness.agent("echo")
    execution = api.start("approval")
    api.harness.work()
    client, csrf = signed_in(api, "alice")
    forged = client.post(f"/ui/executions/{execution}/cancel", data={}, follow_redirects=False)
    assert forged.status_code == 403 and "CSRF" in forged.text
    assert api.engine.get(execution).status == "waiting"
    stale = client.post(f"/ui/executions/{execution}/cancel", data={"csrf": "0" * 40}, follow_redirects=False)
    assert stale.status_code == 403
    done = client.post(f"/ui/executions/{execution}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert api.engine.get(execution).status == "cancelled"
    assert client.get(done.headers["location"]).status_code == 200


def test_a_human_task_form_refuses_a_bad_value_on_the_page_and_completes_with_a_good_one(api: Api) -> None:
    api.register(ORDER)
    api.harness.agent("echo")
    execution = api.start("order")
    api.harness.work()
    client, csrf = signed_in(api, "alice")
    inbox = client.get("/ui/human-tasks").text
    assert 'data-human-task="approve"' in inbox and 'name="amount"' in inbox and 'name="note"' in inbox
    target = f"/ui/human-tasks/{execution}/approve"
    for bad in ("many", "0"):  # not an integer; below the schema's minimum
        refused = client.post(target, data={"csrf": csrf, "amount": bad, "note": "x"})
        assert refused.status_code == 422 and "data-refused" in refused.text, bad
        assert api.engine.get(execution).status == "waiting"
    done = client.post(target, data={"csrf": csrf, "amount": "3", "note": "ok"}, follow_redirects=False)
    assert done.status_code == 303
    api.harness.work()
    view = api.engine.get(execution)
    assert view.status == "completed" and view.steps[1].output == {"amount": 3, "note": "ok"}


def test_the_list_pages_by_keyset_and_searches_ids_and_workflow_names(api: Api) -> None:
    api.register(HELLO)
    api.harness.agent("echo")
    started = [api.start("hello") for _ in range(55)]
    client, _ = signed_in(api, "alice")
    first = client.get("/ui/executions").text
    ids = re.findall(r'data-execution-row="([^"]+)"', first)
    assert len(ids) == 50 and set(ids) <= set(started)
    older = re.search(r'href="(\?[^"]*after=[^"]+)" rel="next"', first)
    assert older
    second = client.get("/ui/executions" + older.group(1).replace("&amp;", "&")).text
    rest = re.findall(r'data-execution-row="([^"]+)"', second)
    assert len(rest) == 5 and not set(rest) & set(ids) and set(ids) | set(rest) == set(started)
    found = re.findall(r'data-execution-row="([^"]+)"', client.get(f"/ui/executions?q={started[7][:8]}").text)
    assert found == [started[7]]
    assert len(re.findall(r"data-execution-row", client.get("/ui/executions?q=ell").text)) == 50
    assert re.findall(r"data-execution-row", client.get("/ui/executions?q=nothing-like-it").text) == []


@contextmanager
def counted(api: Api) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(api.harness.store.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(api.harness.store.engine, "before_cursor_execute", record)


def test_the_list_and_execution_pages_cost_the_same_queries_whatever_their_size(api: Api) -> None:
    middle = [f"b{i}" for i in range(120)]
    wide = {
        "name": "wide",
        "version": "1.0.0",
        "steps": [{"name": name, "agent": "echo"} for name in ["a", *middle, "c"]],
        "edges": [{"from": "a", "to": b} for b in middle] + [{"from": b, "to": "c"} for b in middle],
    }
    api.register(HELLO)
    api.register(wide)
    api.harness.agent("echo")
    small = api.start("hello")
    big = api.start("wide")
    api.harness.work()
    client, _ = signed_in(api, "alice")
    client.get(f"/ui/executions/{small}")  # (warm: the definitions are cached)
    client.get(f"/ui/executions/{big}")
    with counted(api) as few:
        assert client.get(f"/ui/executions/{small}").status_code == 200
    with counted(api) as many:
        page = client.get(f"/ui/executions/{big}")
    assert page.status_code == 200 and len(many) == len(few), (len(few), len(many))
    assert (
        'data-fold="120"' in page.text
        and 'data-step="b7"' not in page.text.split("<svg")[1].split("</svg>")[0]
    )
    with counted(api) as one_page:
        client.get("/ui/executions")
    for _ in range(60):
        api.start("hello")
    with counted(api) as more:
        client.get("/ui/executions")
    assert len(more) == len(one_page)


def test_the_lists_counts_stop_at_a_bound_and_say_so(api: Api, monkeypatch: Any) -> None:
    from workflow_engine.ui import routes

    api.register(HELLO)
    api.harness.agent("echo")
    for _ in range(3):
        api.start("hello")
    api.harness.work()
    api.start("hello")  # (one more, left running)
    client, _ = signed_in(api, "alice")
    monkeypatch.setattr(routes, "COUNTED", 2)
    page = client.get("/ui/executions").text
    counts = dict(re.findall(r'data-count="(\w+)"[^>]*>\s*\w+ ([^<]+)</a>', page))
    assert counts == {"running": "1", "completed": "2+"}, counts
    monkeypatch.setattr(routes, "COUNTED", 3)
    page = client.get("/ui/executions").text
    assert dict(re.findall(r'data-count="(\w+)"[^>]*>\s*\w+ ([^<]+)</a>', page)) == {
        "running": "1",
        "completed": "3",
    }


def test_a_long_output_is_cut_on_the_page_and_whole_behind_its_link(api: Api) -> None:
    api.register(HELLO)
    api.harness.agent(
        "echo", lambda ctx: {"rows": [f"row {n}" for n in range(2_000)]} if ctx.step_name == "a" else {}
    )
    execution = api.start("hello")
    api.harness.work()
    client, _ = signed_in(api, "alice")
    page = client.get(f"/ui/executions/{execution}").text
    links = re.findall(rf'href="(/ui/executions/{execution}/attempts/\d+)" data-whole="output"', page)
    assert len(links) == 1 and "row 1999" not in page and len(page) < 40_000, len(page)
    whole = client.get(links[0])
    assert whole.status_code == 200 and whole.json()["output"]["rows"][-1] == "row 1999"
    assert whole.json()["step"] == "a"
    bob, _ = signed_in(api, "bob")
    assert bob.get(links[0]).status_code == 404  # (not bob's)
    assert client.get(f"/ui/executions/{execution}/attempts/999999").status_code == 404


def test_map_items_are_paged_by_index_and_a_page_past_the_end_shows_the_last(api: Api) -> None:
    two_maps = {
        "name": "two-maps",
        "version": "1.0.0",
        "steps": [
            {"name": "list", "agent": "lister"},
            {"name": "each", "type": "map", "items": "steps.list.items", "agent": "echo"},
            {"name": "few", "type": "map", "items": "steps.list.few", "agent": "echo"},
        ],
        "edges": [{"from": "list", "to": "each"}, {"from": "list", "to": "few"}],
    }
    api.register(two_maps)
    api.harness.agent("lister", lambda ctx: {"items": list(range(120)), "few": [0, 1, 2]})
    api.harness.agent("echo")
    execution = api.start("two-maps")
    api.harness.work()
    client, _ = signed_in(api, "alice")

    def shown(query: str) -> list[tuple[str, int]]:
        page = client.get(f"/ui/executions/{execution}{query}").text
        return [
            (step, int(i)) for i, step in re.findall(r'<tr data-item="(\d+)"[^>]*><td>([\w-]+)</td>', page)
        ]

    assert shown("") == [("each", i) for i in range(50)] + [("few", i) for i in range(3)]
    assert shown("?items=2") == [("each", i) for i in range(100, 120)]
    assert shown("?items=99") == shown("?items=2")


def test_the_history_shows_its_newest_events_and_pages_back_through_older_ones(
    api: Api, monkeypatch: Any
) -> None:
    from workflow_engine.ui import pages

    api.register(HELLO)
    api.harness.agent("echo")
    execution = api.start("hello")
    api.harness.work()
    every = [e.id for e in api.harness.store.events(execution)]
    assert len(every) > 6
    monkeypatch.setattr(pages, "HISTORY", 3)
    client, _ = signed_in(api, "alice")

    def history(query: str) -> tuple[list[str], str, str | None]:
        page = client.get(f"/ui/executions/{execution}{query}").text
        lines = re.findall(r"<li><time>", page.split('<ol class="history">')[1].split("</ol>")[0])
        last = re.search(r'data-last-event="(\d+)"', page)
        older = re.search(r'href="\?([^"]*)" data-history-older', page)
        assert last
        return lines, last.group(1), older.group(1).replace("&amp;", "&") if older else None

    lines, last, older = history("?items=0&steps=0")
    assert len(lines) == 3 and last == str(every[-1]) and older == f"history={every[-3]}"
    lines, last, older = history(f"?{older}")
    assert len(lines) == 3 and last == str(every[-1])  # (live from the newest, whatever is shown)
    assert older == f"history={every[-6]}"


def test_the_graph_labels_a_task_step_with_its_celery_task(api: Api) -> None:
    api.harness.agent("task:shop.add", lambda ctx: {"result": 3})
    api.register({"name": "tasks", "steps": [{"name": "sum", "type": "task", "task": "shop.add"}]})
    execution = api.start("tasks")
    api.harness.work()
    client, _ = signed_in(api, "alice")
    page = client.get(f"/ui/executions/{execution}").text
    assert "sum · shop.add" in page


def test_a_change_committed_while_the_page_is_read_is_followed_not_lost(api: Api, monkeypatch: Any) -> None:
    api.register(ORDER)
    api.harness.agent("echo")
    execution = api.start("order")
    store = api.harness.store
    read = store.step_runs

    def and_then_the_step_ends(*args: Any, **kwargs: Any) -> Any:
        found = read(*args, **kwargs)
        api.harness.deliver_one()  # the draft's outcome commits while the page is being read
        return found

    monkeypatch.setattr(store, "step_runs", and_then_the_step_ends)
    client, _ = signed_in(api, "alice")
    page = client.get(f"/ui/executions/{execution}").text
    monkeypatch.undo()
    shown = re.search(r'data-step="draft" data-status="(\w+)"', page)
    last = re.search(r'data-last-event="(\d+)"', page)
    assert shown and last
    assert shown.group(1) == "queued"  # (read before the outcome)
    # what the page follows from its newest event brings it the outcome: nothing is skipped
    followed = [(e.step_name, e.to_status) for e in store.events(execution, after_id=int(last.group(1)))]
    assert ("draft", "succeeded") in followed and ("approve", "waiting") in followed
