"""A real `wfe worker` reports its agents, and `wfe register` refuses a version naming one it does
not serve: the worker and the command are real processes on PostgreSQL and Redis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import services
from tests.support.polling import poll
from workflow_engine.store.opening import store_for

AGENTS_MODULE = "tests.support.agents"  # (named, not imported: this process's registry stays empty)
FLOW = """\
name: flow
version: 1.0.0
steps:
  - {name: fetch, agent: %s}
"""


@pytest.fixture
def environment(redis_url: str, new_database_url: Callable[[str], str]) -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        **services.environment_without_settings(),
        "WFE_DATABASE_URL": new_database_url("postgresql"),
        "WFE_BROKER_URL": redis_url,
        "WFE_QUEUE_PREFIX": f"t{tag}",
        "WFE_BROKER_TRANSPORT_OPTIONS": json.dumps({"global_keyprefix": f"wfe-test-{tag}:"}),
        "WFE_HEARTBEAT_INTERVAL": "0.5",
        "WFE_WORKER_LOST_AFTER": "60",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }


@pytest.fixture
def worker(environment: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workflow_engine", "worker", "--agents", AGENTS_MODULE, "--concurrency", "1"],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def reported_agents(url: str, timeout: float) -> set[str]:
    """The agents the worker's heartbeat reports, polled until it is written (bounded)."""
    store = store_for(url)
    try:
        workers = poll(store.workers, timeout, "the worker's heartbeat", interval=0.2)
    finally:
        store.dispose()
    return {agent for worker in workers for agent in worker.agents}


def wfe(environment: dict[str, str], folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=folder,
        timeout=60,
        check=False,
    )


def test_register_refuses_an_agent_the_live_worker_does_not_serve(
    environment: dict[str, str], worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    served = reported_agents(environment["WFE_DATABASE_URL"], 60)
    assert "echo" in served and "no-such-agent" not in served
    (tmp_path / "typo.yaml").write_text(FLOW % "no-such-agent")
    (tmp_path / "good.yaml").write_text(FLOW % "echo")
    refused = wfe(environment, tmp_path, "register", "typo.yaml")
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.splitlines()
    assert "unknown agent 'no-such-agent'" in line and f"known agents: {', '.join(sorted(served))}" in line
    registered = wfe(environment, tmp_path, "register", "good.yaml")
    assert registered.returncode == 0 and registered.stderr == "", registered.stderr
    assert worker.poll() is None  # (the worker was live throughout)
