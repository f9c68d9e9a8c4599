"""The REST API as a real server process (`wfe api`), with real workers, Redis and PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import ROOT, unavailable
from tests.integration.conftest import FAST, Cluster, broker_settings, start_cluster
from tests.support import browser
from workflow_engine.api.auth import Tokens
from workflow_engine.clock import FixedClock
from workflow_engine.processes import settings_env
from workflow_engine.settings import Settings
from workflow_engine.users import create_user

pytestmark = pytest.mark.slow
PASSWORD = "a long enough password"
CREATE_ROOT = ["users", "create", "root", "--role", "admin", "--password-stdin"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wfe_command(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`wfe ARGS` run as the deployment runs it: another process, the same settings."""
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **settings_env(settings)},
        cwd=ROOT,
        timeout=120,
        check=False,
    )


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

    def get(self, path: str, user: str = "alice", **kwargs: Any) -> httpx.Response:
        return self.http.get(f"/api/v1{path}", headers=self.auth(user), **kwargs)

    def post(self, path: str, user: str = "alice", **kwargs: Any) -> httpx.Response:
        return self.http.post(f"/api/v1{path}", headers=self.auth(user), **kwargs)

    def register(self, definition: dict[str, Any], user: str = "alice") -> None:
        response = self.post("/workflows", user, json=definition)
        assert response.status_code == 201, response.text

    def start(self, workflow: str, user: str = "alice", **body: Any) -> str:
        response = self.post("/executions", user, json={"workflow": workflow, **body})
        assert response.status_code == 202, response.text
        return str(response.json()["execution_id"])


@pytest.fixture(scope="module")
def server(redis_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = Settings(
        database_url=pg_module_url,
        **broker_settings("redis", redis_url),
        **FAST,
        jwt_secret="integration-test-secret-0123456789abcdef",
    )
    users = {"alice": "operator", "bob": "operator", "vic": "viewer"}
    with serving(settings, tmp_path_factory.mktemp("api-server"), users) as served:
        yield served


@contextmanager
def serving(settings: Settings, folder: Path, users: dict[str, str], root: bool = True) -> Iterator[Server]:
    """A worker, a coordinator and `wfe api` on a free port, with ``users`` (name: role) and,
    if ``root``, an admin made through the CLI as a deployment does; all stopped after."""
    if root:
        created = wfe_command(settings, *CREATE_ROOT, stdin=PASSWORD + "\n")
        assert created.returncode == 0, created.stderr
    cluster = start_cluster(settings, folder)
    port = free_port()
    served = Server(cluster, f"http://127.0.0.1:{port}")
    try:
        for user, role in users.items():
            create_user(cluster.engine.store, user, PASSWORD, role)
        cluster.processes.start_api(port)
        cluster.wait_for(lambda: _healthy(served), what="the API to come up")
        yield served
    finally:
        served.http.close()
        cluster.processes.stop()
        cluster.engine.close()


def _healthy(server: Server) -> bool:
    try:
        return server.http.get("/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


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


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens(server: Server) -> dict[str, str]:
    """Every way a token can be wrong, each built from alice's real one."""
    good = server.tokens.get("alice") or server.login("alice")
    header, _, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    assert {"sub", "exp", "iat", "type"} <= set(claims)
    root = server.cluster.engine.store.get_user("root")
    an_hour_ago = FixedClock(datetime.now(UTC) - timedelta(hours=1))
    alice = server.cluster.engine.store.get_user("alice")
    return {
        "garbage": "garbage",
        "other key": jwt.encode(claims, "another-secret-entirely-0123456789abcdef", algorithm="HS256"),
        "altered": ".".join([header, _b64({**claims, "sub": str(root.id), "role": "admin"}), signature]),
        "expired": Tokens(server.cluster.settings, an_hour_ago).issue(alice).access_token,
        # the real claims, unexpired: only the algorithm check can refuse it
        "alg none": ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""]),
    }


@pytest.mark.parametrize("case", ["garbage", "other key", "altered", "expired", "alg none"])
def test_bad_tokens_over_http_are_401(server: Server, case: str) -> None:
    token = _bad_tokens(server)[case]
    response = server.http.get("/api/v1/executions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, (case, response.text)
    assert response.headers["content-type"] == "application/json" and response.json()["detail"]
    if case == "alg none":  # the same claims signed with our key pass: the algorithm is what failed
        claims = jwt.decode(token, options={"verify_signature": False})
        signed = jwt.encode(claims, server.cluster.settings.jwt_secret.get_secret_value(), algorithm="HS256")
        accepted = server.http.get("/api/v1/executions", headers={"Authorization": f"Bearer {signed}"})
        assert accepted.status_code == 200


def test_a_viewer_reads_its_own_executions_and_may_change_nothing(server: Server) -> None:
    server.register({**HELLO, "name": "viewed"})
    vic = server.cluster.engine.store.get_user("vic")
    own = server.cluster.engine.start("viewed", owner_id=vic.id, actor="deployment").id
    assert server.get(f"/executions/{own}", "vic").status_code == 200
    assert own in [item["execution_id"] for item in server.get("/executions", "vic").json()["items"]]
    refused = [
        server.post("/executions", "vic", json={"workflow": "viewed"}),
        server.post(f"/executions/{own}/cancel", "vic"),
        server.post(f"/executions/{own}/pause", "vic"),
        server.post("/workflows", "vic", json={**HELLO, "name": "viewed", "version": "9.0.0"}),
    ]
    assert [(r.status_code, "detail" in r.json()) for r in refused] == [(403, True)] * 4
    assert server.cluster.wait(own).status == "completed"


def test_operators_control_their_own_and_admins_anyones_executions(server: Server) -> None:
    server.register({**HELLO, "name": "controlled"})
    execution = server.start("controlled", metadata={"sleep": 1})  # two steps: 2 s at least
    assert server.post(f"/executions/{execution}/pause").json()["status"] == "paused"
    for other in (
        server.get(f"/executions/{execution}", "bob"),
        server.post(f"/executions/{execution}/resume", "bob"),
        server.post(f"/executions/{execution}/cancel", "bob"),
        server.get("/workflows/controlled", "bob"),
    ):
        assert other.status_code == 404 and other.json()["detail"]
    assert server.get(f"/executions/{execution}", "root").json()["status"] == "paused"
    assert server.post(f"/executions/{execution}/resume", "root").json()["status"] == "running"
    assert server.post(f"/executions/{execution}/cancel").json()["status"] == "cancelled"
    assert server.cluster.wait(execution).status == "cancelled"


def test_pagination_date_range_and_limits_over_http(server: Server) -> None:
    server.register({**HELLO, "name": "paged"}, "bob")
    ids = [server.start("paged", "bob") for _ in range(4)]  # each request commits before the next
    page = server.get("/executions", "bob", params={"workflow": "paged", "limit": 2, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert [i["execution_id"] for i in page["items"]] == [ids[2], ids[1]]
    created = {i["execution_id"]: i["created_at"] for i in server.get("/executions", "bob").json()["items"]}
    naive = datetime.fromisoformat(created[ids[3]]).astimezone(UTC).replace(tzinfo=None)
    ranged = server.get(  # after is inclusive, before exclusive; a naive time is UTC
        "/executions",
        "bob",
        params={"workflow": "paged", "created_after": created[ids[1]], "created_before": naive.isoformat()},
    ).json()
    assert ranged["total"] == 2 and [i["execution_id"] for i in ranged["items"]] == [ids[2], ids[1]]
    for limit in (0, 1001):
        refused = server.get("/executions", "bob", params={"limit": limit})
        assert refused.status_code == 422 and refused.json()["detail"], limit
    for execution in ids:
        server.cluster.wait(execution)
    done = server.get("/executions", "bob", params={"status": "completed", "workflow": "paged"})
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


ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def test_the_docs_page_references_only_assets_the_engine_serves(server: Server) -> None:
    page = server.http.get("/api/docs")
    assert page.status_code == 200
    assets = ASSET.findall(page.text)
    assert assets, "the docs page loads its script and style sheet"
    assert not [a for a in assets if "//" in a], assets
    for asset in assets:
        served = server.http.get(asset)
        assert served.status_code == 200 and served.content, asset


@pytest.mark.browser
def test_the_docs_render_every_operation_in_chromium_with_the_network_cut_off(
    server: Server, tmp_path: Path
) -> None:
    if not os.path.exists(browser.CHROMIUM):
        unavailable("no Chromium (Debian package chromium) at /usr/bin/chromium")
    schema = server.http.get("/api/openapi.json").json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    origin = str(server.http.base_url).rstrip("/")
    with browser.offline_page(origin) as (page, seen):
        page.goto(f"{origin}/api/docs")
        page.wait_for_function(
            f"document.querySelectorAll('.opblock').length >= {operations}", timeout=30_000
        )
        assert page.locator(".opblock-summary-path").first.is_visible()
        assert "Workflow Engine" in page.locator(".info .title").first.inner_text()
        shots = Path(os.environ.get("WFE_TEST_SCREENSHOTS") or tmp_path)  # where to look at them
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "api-docs.png"))
    assert seen.refused == []
