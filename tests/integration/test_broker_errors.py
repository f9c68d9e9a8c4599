"""A broker that is not there, not TLS, or not one the engine runs on: a command that publishes
says so in one line on stderr and exits non-zero, within a bounded time, and leaves the
database as the reconciler expects it (or untouched, when the setting is refused)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.test_api_server import free_port
from tests.support import services

WORKFLOW = """
name: hello
steps:
  - name: a
    agent: echo
"""
# a command that waits on a broker longer than this hangs (the bound the engine keeps is ~25 s)
HANG = 90


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A project with a registered workflow on SQLite (and the embedded broker)."""
    (tmp_path / "hello.yaml").write_text(WORKFLOW)
    registered = wfe(tmp_path, "register", "hello.yaml")
    assert registered.returncode == 0, registered.stderr
    return tmp_path


def wfe(folder: Path, *args: str, broker: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **services.environment_without_settings(),
        "WFE_DATABASE_URL": f"sqlite:///{folder / 'wfe.db'}",
        "WFE_AGENT_MODULES": "tests.support.agents",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        **({"WFE_BROKER_URL": broker} if broker else {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=HANG,
        check=False,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line the command wrote on stderr, having failed."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.returncode == 1
    assert lines[0].startswith("wfe: error: ")
    return lines[0]


def rows(folder: Path, query: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(f"sqlite:///{folder / 'wfe.db'}")
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(query))]
    finally:
        engine.dispose()


def test_submit_to_a_closed_port_fails_in_one_line_and_leaves_its_step_to_the_reconciler(
    folder: Path,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = wfe(folder, "submit", "hello", broker=url)
    line = one_error_line(done)
    execution = done.stdout.strip()
    assert f"the broker at {url} did not answer" in line and "Connection refused" in line
    assert f"the steps of execution {execution} wait to be published" in line
    # recorded, with its step's message marked unsent: the reconciler publishes it later
    assert rows(folder, "SELECT id, status FROM wfe_executions") == [(execution, "running")]
    runs = rows(folder, "SELECT step_name, status, published_at FROM wfe_step_runs")
    assert runs == [("a", "queued", None)]


def test_submit_over_tls_to_a_plain_redis_ends_in_one_line(folder: Path, redis_url: str) -> None:
    host, port = services.host_port(redis_url)
    done = wfe(folder, "submit", "hello", broker=f"rediss://{host}:{port}/0?ssl_cert_reqs=none")
    line = one_error_line(done)
    assert f"the broker at rediss://{host}:{port}/0" in line and "rediss:// speaks TLS" in line


@pytest.mark.parametrize(
    ("broker", "says"),
    [
        ("kafka://127.0.0.1:9092", "WFE_BROKER_URL: the engine does not run on kafka://"),
        ("rediss://127.0.0.1:6379/0", "WFE_BROKER_URL: a rediss:// URL says how to check the server's"),
    ],
)
def test_a_broker_the_engine_cannot_use_is_refused_before_anything_is_recorded(
    folder: Path, broker: str, says: str
) -> None:
    done = wfe(folder, "submit", "hello", broker=broker)
    assert says in one_error_line(done)
    assert done.stdout == ""
    assert rows(folder, "SELECT id FROM wfe_executions") == []


def test_cancel_that_cannot_reach_the_broker_cancels_and_says_its_steps_were_not_told(folder: Path) -> None:
    execution = wfe(folder, "submit", "hello").stdout.strip()  # on the embedded broker: no worker
    url = f"amqp://guest:secret@127.0.0.1:{free_port()}//"
    done = wfe(folder, "cancel", execution, broker=url)
    line = one_error_line(done)
    assert f"the broker at amqp://guest:**@127.0.0.1:{url.rsplit(':', 1)[1]} did not answer" in line
    assert "secret" not in line
    assert f"the workers were not told to drop {execution}:a:1" in line
    assert rows(folder, "SELECT status FROM wfe_executions") == [("cancelled",)]
