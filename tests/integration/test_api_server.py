"""The REST API as a real server process (`wfe api`), with real workers, Redis and PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import FAST, Cluster, broker_settings, start_cluster
from workflow_engine.processes import settings_env
from workflow_engine.settings import Settings

pytestmark = pytest.mark.slow
PASSWORD = "a long enough password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, cluster: Cluster, base: str) -> None:
        self.cluster = cluster
        self.http = httpx.Client(base_url=base, timeout=30)
        self.tokens: dict[str, str] = {}

    def login(self, user: str) -> str:
        response = self.http.post("/api/v1/auth/token", data={"username": user, "password": PASSWORD})
        assert response.status_code == 200, response.text
        self.tokens[user] = response.json()["access_token"]
        return self.tokens[user]

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.get(user) or self.login(user)}"}


@pytest.fixture(scope="module")
def server(redis_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = Settings(
        database_url=pg_module_url,
        **broker_settings("redis", redis_url),
        **FAST,
        jwt_secret="integration-test-secret-0123456789abcdef",
    )
    env = {**os.environ, **settings_env(settings)}
    for user, role in (("root", "admin"), ("alice", "operator"), ("bob", "operator"), ("vic", "viewer")):
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "workflow_engine",
                "users",
                "create",
                user,
                "--role",
                role,
                "--password-stdin",
            ],
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert created.returncode == 0, created.stderr
    cluster = start_cluster(settings, tmp_path_factory.mktemp("api-server"))
    port = free_port()
    cluster.processes.start_api(port)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            cluster.dump()
            raise AssertionError("the API did not come up")
        time.sleep(0.2)
    served = Server(cluster, base)
    try:
        yield served
    finally:
        served.http.close()
        cluster.processes.stop()
        cluster.engine.close()


HELLO = {
    "name": "hello",
    "version": "1.0.0",
    "steps": [{"name": "a", "agent": "echo"}, {"name": "b", "agent": "echo"}],
}


def test_token_flow_over_http(server: Server) -> None:
    pair = server.http.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}).json()
    refreshed = server.http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    headers = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert server.http.get("/api/v1/executions", headers=headers).status_code == 200
    assert (
        server.http.post("/api/v1/auth/token", json={"username": "alice", "password": "x"}).status_code == 401
    )


@pytest.mark.parametrize(
    "token",
    ["garbage", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwidHlwZSI6ImFjY2VzcyJ9."],
    ids=["garbage", "alg-none"],
)
def test_bad_tokens_over_http_are_401(server: Server, token: str) -> None:
    response = server.http.get("/api/v1/executions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.json()["detail"]


def test_roles_and_isolation_over_http(server: Server) -> None:
    created = server.http.post("/api/v1/workflows", json=HELLO, headers=server.auth("alice"))
    assert created.status_code == 201, created.text
    assert (
        server.http.post(
            "/api/v1/workflows", json={**HELLO, "version": "9.0.0"}, headers=server.auth("vic")
        ).status_code
        == 403
    )
    started = server.http.post("/api/v1/executions", json={"workflow": "hello"}, headers=server.auth("alice"))
    assert started.status_code == 202
    execution = started.json()["execution_id"]
    assert server.http.get(f"/api/v1/executions/{execution}", headers=server.auth("bob")).status_code == 404
    assert (
        server.http.post(f"/api/v1/executions/{execution}/cancel", headers=server.auth("bob")).status_code
        == 404
    )
    assert server.http.get(f"/api/v1/executions/{execution}", headers=server.auth("root")).status_code == 200
    assert server.cluster.wait(execution).status == "completed"


def test_pagination_and_filters_over_http(server: Server) -> None:
    server.http.post("/api/v1/workflows", json={**HELLO, "name": "paged"}, headers=server.auth("bob"))
    ids = []
    for _ in range(4):
        response = server.http.post(
            "/api/v1/executions", json={"workflow": "paged"}, headers=server.auth("bob")
        )
        ids.append(response.json()["execution_id"])
        time.sleep(0.01)
    page = server.http.get(
        "/api/v1/executions",
        params={"workflow": "paged", "limit": 2, "offset": 0},
        headers=server.auth("bob"),
    ).json()
    assert page["total"] == 4 and [i["execution_id"] for i in page["items"]] == [ids[3], ids[2]]
    for execution in ids:
        server.cluster.wait(execution)
    done = server.http.get(
        "/api/v1/executions", params={"status": "completed", "workflow": "paged"}, headers=server.auth("bob")
    )
    assert done.json()["total"] == 4


def test_server_sent_events_deliver_the_completion(server: Server) -> None:
    server.http.post("/api/v1/workflows", json={**HELLO, "name": "streamed"}, headers=server.auth("alice"))
    started = server.http.post(
        "/api/v1/executions",
        json={"workflow": "streamed", "metadata": {"sleep": 0.3}},
        headers=server.auth("alice"),
    )
    execution = started.json()["execution_id"]
    events: list[tuple[str, dict[str, object]]] = []
    kind = ""
    with server.http.stream(
        "GET", f"/api/v1/executions/{execution}/events", headers=server.auth("alice")
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
    assert events[-1] == ("end", {"execution_id": execution, "status": "completed"})
    steps = [(e["step_name"], e["to_status"]) for k, e in events if k == "transition" and e["step_name"]]
    assert ("a", "running") in steps and ("b", "succeeded") in steps
