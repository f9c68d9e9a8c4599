"""The monitor's numeric query parameters and a human task's form, in-process on PostgreSQL:
huge, negative and non-numeric numbers and deeply nested JSON get a 4xx (or are clamped), never
a 500; and every number a user who is not an admin sees on the live list is of their own
executions only."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Api
from workflow_engine.ui.session import COOKIE

HUGE = "99999999999999999999"
BAD_NUMBERS = [HUGE, "-1", "-" + HUGE, "abc", "1e309", "1.5", ""]
APPROVE = {
    "name": "approve-json",
    "version": "1.0.0",
    "steps": [{"name": "approve", "type": "human"}, {"name": "done", "agent": "echo"}],
}


def session(api: Api, user: str) -> tuple[TestClient, str]:
    """A client with ``user``'s monitor session (as signing in sets it) and the page's CSRF token."""
    client = TestClient(api.client.app)
    issuer = api.client.app.state.tokens  # type: ignore[attr-defined]
    client.cookies.set(COOKIE, issuer.issue(api.harness.store.get_user(user)).refresh_token, path="/ui")
    page = client.get("/ui/executions")
    assert page.status_code == 200, page.text[:500]
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert found, page.text[:500]
    return client, found.group(1)


@pytest.fixture
def started(api: Api) -> tuple[Api, str, int]:
    api.register(APPROVE)
    execution_id = api.start("approve-json")
    run_id = api.harness.runs(execution_id)[0].id
    return api, execution_id, run_id


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_the_pages_numeric_parameters_never_give_a_server_error(
    started: tuple[Api, str, int], value: str
) -> None:
    api, execution_id, run_id = started
    client, _ = session(api, "alice")
    pages = [
        f"/ui/executions/{execution_id}?items={value}",
        f"/ui/executions/{execution_id}?steps={value}",
        f"/ui/executions/{execution_id}?history={value}",
        f"/ui/executions/{execution_id}?items={value}&steps={value}&history={value}",
        f"/ui/executions/{execution_id}/live?items={value}&steps={value}&history={value}",
        f"/ui/executions/{execution_id}/attempts/{value or 0}",
        f"/ui/executions?limit={value}&offset={value}",
        f"/ui/executions/rows?limit={value}&offset={value}",
        f"/ui/human-tasks?limit={value}",
        f"/ui/schedules?limit={value}",
        f"/ui/errors?limit={value}",
    ]
    for path in pages:
        answer = client.get(path)
        assert answer.status_code < 500, (path, answer.status_code, answer.text[:300])
    assert client.get(f"/ui/executions/{execution_id}/attempts/{run_id}").status_code == 200


@pytest.mark.parametrize("value", [v for v in BAD_NUMBERS if v])
def test_the_streams_numeric_parameters_are_refused_before_anything_streams(
    started: tuple[Api, str, int], value: str
) -> None:
    api, execution_id, _ = started
    client, _ = session(api, "alice")
    for path, headers in [
        (f"/ui/executions/{execution_id}/events?after={value}", {}),
        (f"/ui/executions/{execution_id}/events", {"Last-Event-ID": value}),
        (f"/ui/executions/changes?from_event={value}", {}),
    ]:
        answer = client.get(path, headers=headers)
        assert 400 <= answer.status_code < 500, (path, headers, answer.status_code, answer.text[:300])


def test_a_human_task_form_with_json_nested_ten_thousand_deep_is_refused_on_the_page(
    started: tuple[Api, str, int],
) -> None:
    api, execution_id, _ = started
    client, csrf = session(api, "alice")
    deep = "[" * 10_000 + "]" * 10_000
    answer = client.post(f"/ui/human-tasks/{execution_id}/approve", data={"csrf": csrf, "__json__": deep})
    assert answer.status_code == 422, answer.text[:300]
    assert "nested" in answer.text
    deep_object = '{"a":' * 10_000 + "1" + "}" * 10_000
    answer = client.post(
        f"/ui/human-tasks/{execution_id}/approve", data={"csrf": csrf, "__json__": deep_object}
    )
    assert answer.status_code == 422, answer.text[:300]
    assert api.harness.statuses(execution_id)["approve"] == "waiting"
    fine = client.post(
        f"/ui/human-tasks/{execution_id}/approve",
        data={"csrf": csrf, "__json__": json.dumps({"ok": True})},
        follow_redirects=False,
    )
    assert fine.status_code == 303, fine.text[:300]


def newest_event_of(api: Api, execution_ids: list[str]) -> int:
    return max(event.id for execution_id in execution_ids for event in api.harness.store.events(execution_id))


def first_change(client: TestClient, from_event: int) -> str:
    """The id of the first `changed` event of the list's change stream."""
    with client.stream("GET", f"/ui/executions/changes?from_event={from_event}") as stream:
        for line in stream.iter_lines():
            if line.startswith("id:"):
                return line.removeprefix("id:").strip()
    raise AssertionError("the stream ended without a change")


def test_the_live_list_shows_a_user_who_is_not_an_admin_only_numbers_of_their_own(api: Api) -> None:
    api.engine.register(APPROVE)  # (the deployment's: everyone runs it)
    mine = [api.start("approve-json", "alice")]
    before = newest_event_of(api, mine)
    others = [api.start("approve-json", "bob") for _ in range(3)]
    mine.append(api.start("approve-json", "alice"))
    others.append(api.start("approve-json", "bob"))  # the engine's newest event is bob's
    everyone = newest_event_of(api, mine + others)
    assert newest_event_of(api, others) == everyone > newest_event_of(api, mine)
    client, _ = session(api, "alice")
    page = client.get("/ui/executions").text
    followed = re.search(r"/ui/executions/changes\?from_event=(\d+)", page)
    assert followed is not None and int(followed.group(1)) == newest_event_of(api, mine)
    counts = re.search(r'aria-label="executions by status">(.*?)</p>', page, re.S)
    assert counts is not None and ">waiting 2<" in counts.group(1).replace("\n", "").replace("  ", "")
    # the change stream: alice's newest event, never the engine's
    assert first_change(client, before) == str(newest_event_of(api, mine))
    admin, _ = session(api, "root")
    shown = re.search(r"/ui/executions/changes\?from_event=(\d+)", admin.get("/ui/executions").text)
    assert shown is not None and int(shown.group(1)) == everyone  # (an admin's list is everyone's)
