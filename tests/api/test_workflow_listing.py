"""GET /workflows lists a page of workflows (limit, offset, by name or newest first) and GET
/workflows/{name} a workflow's versions, neither reading every version's document: only GET
/workflows/{name}/versions/{version} (and the latest's definition in GET /workflows/{name})
reads one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from tests.api.conftest import Api

pytestmark = pytest.mark.store


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, api_factory: Callable[..., Api]) -> Api:
    return api_factory(request.param)


def echo(name: str, version: str, description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "description": description,
        "steps": [{"name": "a", "agent": "echo", "config": {"padding": "x" * 2000}}],
    }


@contextmanager
def statements(api: Api) -> Iterator[list[str]]:
    """The SQL statements run while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engine = api.harness.store.engine
    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)


def documents_read(seen: list[str]) -> int:
    return sum("wfe_workflows.document" in statement for statement in seen)


@pytest.fixture
def registered(api: Api) -> Api:
    for name in ("beta", "alpha", "gamma"):
        for version in ("1.0.0", "1.10.0", "1.2.0"):
            api.register(echo(name, version, f"{name} {version}"))
    api.register(echo("delta", "1.0.0"), user="bob")  # not alice's
    return api


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()]


def test_the_listing_is_paged_and_reads_no_document(registered: Api) -> None:
    api = registered
    with statements(api) as seen:
        first = api.get("/workflows", params={"limit": 2})
    assert names(first) == ["alpha", "beta"]
    assert documents_read(seen) == 0
    alpha = first.json()[0]
    assert alpha["versions"] == ["1.10.0", "1.2.0", "1.0.0"] and alpha["latest_version"] == "1.10.0"
    assert alpha["description"] == "alpha 1.10.0" and alpha["definition"] is None
    assert names(api.get("/workflows", params={"limit": 2, "offset": 2})) == ["gamma"]
    assert names(api.get("/workflows")) == ["alpha", "beta", "gamma"]  # (bob's is not alice's)
    assert names(api.get("/workflows", "root")) == ["alpha", "beta", "delta", "gamma"]


def test_newest_first_lists_the_latest_registration_first(registered: Api) -> None:
    api = registered
    api.register(echo("beta", "2.0.0"))
    assert names(api.get("/workflows", params={"order": "newest"})) == ["beta", "gamma", "alpha"]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"order": "random"}, {"limit": "many"}],
)
def test_bad_page_parameters_are_refused(api: Api, params: dict[str, Any]) -> None:
    refused = api.get("/workflows", params=params)
    assert refused.status_code == 422 and "detail" in refused.json()


def test_one_workflow_lists_its_versions_reading_only_the_latest_document(registered: Api) -> None:
    api = registered
    with statements(api) as seen:
        found = api.get("/workflows/beta")
    assert found.status_code == 200
    body = found.json()
    assert body["versions"] == ["1.10.0", "1.2.0", "1.0.0"]
    assert body["definition"]["version"] == "1.10.0"
    assert documents_read(seen) == 1
    assert api.get("/workflows/delta").status_code == 404
    one = api.get("/workflows/beta/versions/1.2.0").json()
    assert one["definition"]["version"] == "1.2.0" and one["description"] == "beta 1.2.0"
