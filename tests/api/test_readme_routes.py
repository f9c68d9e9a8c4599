"""The README's table of REST routes: every route the API serves is there, nothing else is, and
each example body is valid for its route (checked against the OpenAPI schema the API serves)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import ROOT
from workflow_engine.api.app import create_app
from workflow_engine.definitions.loader import load
from workflow_engine.settings import Settings

pytestmark = pytest.mark.unit
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)` \| (.*) \|$")


def readme_routes() -> dict[tuple[str, str], str]:
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[(match.group(1), match.group(2))] = match.group(3)
    return rows


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path: Path = tmp_path_factory.mktemp("openapi") / "wfe.db"
    return create_app(Settings(database_url=f"sqlite:///{path}")).openapi()


def served(openapi: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path.removeprefix("/api/v1")): operation
        for path, operations in openapi["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in operations.items()
    }


def test_every_route_is_in_the_readme_and_no_other(openapi: dict[str, Any]) -> None:
    documented, routes = set(readme_routes()), set(served(openapi))
    assert routes - documented == set(), "routes the README does not show"
    assert documented - routes == set(), "routes the README shows that the API does not serve"


def test_each_example_body_is_valid_for_its_route(openapi: dict[str, Any]) -> None:
    rows = readme_routes()
    for route, operation in served(openapi).items():
        content = operation.get("requestBody", {}).get("content", {})
        assert route in rows, f"{route} is not in the README"
        example = re.match(r"`(\{.*?\})`", rows[route])
        if not content:
            assert rows[route].startswith("-"), f"{route} takes no body, the README shows one"
            continue
        assert example, f"{route} takes a body: the README must show one"
        body = json.loads(example.group(1))
        schema = next(iter(content.values()))["schema"]
        jsonschema.validate(body, {**schema, "components": openapi["components"]})
        if route == ("POST", "/workflows"):
            assert load(body).name == body["name"]  # a definition that loads
