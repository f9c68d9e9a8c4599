"""A plain `pip install` (no extras) in a fresh virtualenv, run on PostgreSQL with the URLs a
user writes: `postgresql://` for the migrations, a workflow and its worker and coordinator,
`postgres://` for the API (a view, the event stream, the docs). Live notifications under each
driver are tested in tests/coordinator/test_events.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.integration.test_api_server import free_port
from tests.support import services
from tests.support.polling import poll
from workflow_engine.store.urls import database_url

pytestmark = [pytest.mark.slow, pytest.mark.long]
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the package installed from a copy of the source, no extras."""
    folder = tmp_path_factory.mktemp("plain-install")
    source = folder / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "*.db", ".*.broker", "__pycache__", "*.egg-info"),
    )
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True, timeout=120)
    pip = [str(folder / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    installed = subprocess.run(
        [*pip, "install", "--quiet", "-c", str(source / "constraints.txt"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return folder / "venv"


@pytest.fixture(scope="module")
def plain_url(pg_databases: services.PostgresDatabases) -> Iterator[str]:
    """An empty database (not migrated) and its URL as `psql` prints it: `postgresql://`."""
    name = f"wfe_plain_{uuid.uuid4().hex[:8]}"
    with pg_databases.admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    pg_databases.created.append(name)
    url = sa.make_url(pg_databases.url(name)).set(drivername="postgresql")
    yield url.render_as_string(hide_password=False)


def wfe(
    venv: Path, cwd: Path, url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **services.environment_without_settings(),
        "WFE_DATABASE_URL": url,
        "WFE_AGENT_MODULES": "workers.demo_agents",
        "WFE_RECONCILE_INTERVAL": "0.2",
    }
    return subprocess.run(
        [str(venv / "bin" / "wfe"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
        check=False,
    )


def test_a_plain_install_runs_a_workflow_on_postgresql_with_a_plain_url(
    venv: Path, plain_url: str, tmp_path: Path
) -> None:
    python = str(venv / "bin" / "python")
    no_extras = subprocess.run([python, "-c", "import pytest"], capture_output=True, check=False)
    assert no_extras.returncode != 0, "the development extras are not installed"
    # a deployment's own folder: its agent modules and definitions, not the source tree
    (tmp_path / "workers").mkdir()
    for name in ("__init__.py", "demo_agents.py"):
        shutil.copy(ROOT / "workers" / name, tmp_path / "workers" / name)
    shutil.copy(ROOT / "config" / "workflows" / "ib-generation.json", tmp_path / "ib-generation.json")
    assert database_url(plain_url).get_driver_name() == "psycopg"

    upgraded = wfe(venv, tmp_path, plain_url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    ran = wfe(
        venv, tmp_path, plain_url, "run", "ib-generation.json", "--input", '{"project_id": "p-1"}', "--json"
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["status"] == "completed"
    assert {s["name"]: s["status"] for s in result["steps"]} == dict.fromkeys(
        ["enrich", "compose", "write", "validate", "assemble", "export"], "succeeded"
    )
    write = next(s for s in result["steps"] if s["name"] == "write")  # a map: one item per section
    assert write["items"] == {"total": 3, "done": 3, "failed": 0, "running": 0, "pending": 0, "cancelled": 0}

    heroku = "postgres://" + plain_url.split("://", 1)[1]
    create = ("users", "create", "alice", "--role", "admin", "--password-stdin")
    created = wfe(venv, tmp_path, heroku, *create, stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("w") as output:
        api = subprocess.Popen(
            [str(venv / "bin" / "wfe"), "api", "--host", "127.0.0.1", "--port", str(port)],
            env={
                **services.environment_without_settings(),
                "WFE_DATABASE_URL": heroku,
            },
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            _wait_until_up(http, api, log)
            token = http.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
            assert token.status_code == 200, token.text
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
            view = http.get(f"/api/v1/executions/{result['execution_id']}", headers=auth)
            assert view.status_code == 200 and view.json()["status"] == "completed", view.text
            events = http.get(f"/api/v1/executions/{result['execution_id']}/events", headers=auth)
            assert events.status_code == 200
            blocks = [b for b in events.text.replace("\r\n", "\n").split("\n\n") if b.strip()]
            assert sum("event: transition" in b for b in blocks) >= 6
            end = json.loads(blocks[-1].split("data: ", 1)[1])
            assert "event: end" in blocks[-1] and end["status"] == "completed"
            assert http.get("/api/docs").status_code == 200
    finally:
        api.terminate()
        api.wait(timeout=30)


def _wait_until_up(http: httpx.Client, api: subprocess.Popen[bytes], log: Path) -> None:
    def up() -> bool:
        if api.poll() is not None:
            raise AssertionError(f"wfe api exited: {log.read_text()[-3000:]}")
        try:
            return http.get("/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    poll(up, 60, "wfe api to come up")
