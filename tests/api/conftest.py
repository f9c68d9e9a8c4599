"""The API in-process (TestClient) on PostgreSQL, with the in-process harness as broker and worker."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.harness import Harness
from workflow_engine.api.app import create_app
from workflow_engine.engine import Engine
from workflow_engine.users import _hasher

PASSWORD = "correct horse battery"
USERS = {"root": "admin", "alice": "operator", "bob": "operator", "vic": "viewer"}


@functools.cache
def password_hash() -> str:
    return _hasher.hash(PASSWORD)


@dataclass
class Api:
    client: TestClient
    harness: Harness
    engine: Engine
    tokens: dict[str, str]

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def get(self, path: str, user: str = "alice", **kwargs: Any) -> Any:
        headers = {**self.headers(user), **kwargs.pop("headers", {})}
        return self.client.get(f"/api/v1{path}", headers=headers, **kwargs)

    def post(self, path: str, user: str = "alice", **kwargs: Any) -> Any:
        headers = {**self.headers(user), **kwargs.pop("headers", {})}
        return self.client.post(f"/api/v1{path}", headers=headers, **kwargs)

    def register(self, definition: dict[str, Any], user: str = "alice") -> Any:
        response = self.post("/workflows", user, json=definition)
        assert response.status_code == 201, response.text
        return response.json()

    def start(self, workflow: str, user: str = "alice", **body: Any) -> str:
        response = self.post("/executions", user, json={"workflow": workflow, **body})
        assert response.status_code == 202, response.text
        return str(response.json()["execution_id"])


@pytest.fixture
def api_factory(new_database_url: Callable[[str], str]) -> Iterator[Callable[..., Api]]:
    made: list[Api] = []

    def make(backend: str = "postgresql", **settings: Any) -> Api:
        harness = Harness(new_database_url(backend), **settings)
        engine = Engine(harness.settings, harness.store, dispatcher=harness.broker)
        client = TestClient(create_app(harness.settings, engine))
        for name, role in USERS.items():
            harness.store.create_user(name, password_hash(), role)  # hashed once: argon2 is slow on purpose
        issuer = client.app.state.tokens  # type: ignore[attr-defined]
        tokens = {name: issuer.issue(harness.store.get_user(name)).access_token for name in USERS}
        api = Api(client, harness, engine, tokens)
        made.append(api)
        return api

    yield make
    for api in made:
        api.client.close()
        api.engine.notifier.stop()
        api.harness.close()


@pytest.fixture
def api(api_factory: Callable[..., Api]) -> Api:
    return api_factory()


HELLO = {
    "name": "hello",
    "version": "1.0.0",
    "steps": [{"name": "a", "agent": "echo"}, {"name": "b", "agent": "echo"}],
}
TYPED = {
    "name": "typed",
    "version": "1.0.0",
    "input_schema": {
        "type": "object",
        "required": ["project_id"],
        "properties": {"project_id": {"type": "string"}},
    },
    "steps": [{"name": "a", "agent": "echo"}],
}
APPROVAL = {
    "name": "approval",
    "version": "1.0.0",
    "steps": [
        {"name": "draft", "agent": "echo"},
        {
            "name": "approve",
            "type": "human",
            "input_schema": {
                "type": "object",
                "required": ["approved"],
                "properties": {"approved": {"type": "boolean"}},
            },
        },
    ],
}
