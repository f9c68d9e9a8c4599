"""What a deployment's side doors expose: `wfe flower` refuses to serve everyone's tasks
without authentication off loopback, and a worker's metrics endpoint listens on loopback unless
told otherwise. Real `wfe flower` and `wfe worker` processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import FAST, broker_settings
from tests.support.polling import poll
from workflow_engine.processes import LocalCluster, settings_env
from workflow_engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.timeout(180), pytest.mark.long]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at ``port`` (from /proc/net/tcp and tcp6)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, _remote, state = line.split()[1:4]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # (0A: LISTEN)
                if len(address) == 8:
                    found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                else:
                    found.add("::" if int(address, 16) == 0 else address)
    return found


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'wfe.db'}", **broker_settings("redis", redis_url), **FAST
    )


def flower_run(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "workflow_engine", "flower", *args]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "WFE_"))}
    environment = {**inherited, **settings_env(settings), **(env or {})}
    return subprocess.run(command, env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "args",
    [
        ("--address", "0.0.0.0"),
        ("--address=",),
        ("--", "--address=0.0.0.0"),  # Flower's own option, after wfe's
        ("--basic-auth=", "--address", "0.0.0.0"),  # an empty credential is none
    ],
    ids=["all-interfaces", "empty-address", "flower-option", "empty-basic-auth"],
)
def test_flower_refuses_to_start_unauthenticated_off_loopback(
    settings: Settings, args: tuple[str, ...]
) -> None:
    done = flower_run(settings, "--port", str(free_port()), *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "without authentication" in lines[0] and "--basic-auth" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_flower_on_loopback_without_auth_starts_and_says_it_is_unauthenticated(
    settings: Settings, tmp_path: Path
) -> None:
    processes = LocalCluster(settings, tmp_path, cwd=ROOT)
    port = free_port()
    flower = processes.start_flower(port)
    try:
        poll(lambda: _answers(f"http://127.0.0.1:{port}/api/workers"), timeout=60, what="flower to serve")
        said = [line for line in flower.log.read_text().splitlines() if "unauthenticated" in line]
        assert len(said) == 1 and "loopback" in said[0], flower.tail(30)
        assert listening(port) <= {"127.0.0.1"}, listening(port)
    finally:
        processes.stop()


def test_flower_off_loopback_with_basic_auth_env_starts_and_asks_for_it(
    settings: Settings, tmp_path: Path
) -> None:
    processes = LocalCluster(settings, tmp_path, cwd=ROOT, extra_env={"FLOWER_BASIC_AUTH": "ops:secret"})
    port = free_port()
    flower = processes.start_flower(port, "--address", "0.0.0.0")
    try:
        answer = poll(lambda: _answers(f"http://127.0.0.1:{port}/api/workers"), timeout=60, what="flower")
        assert answer.status_code == 401
        with_password = httpx.get(f"http://127.0.0.1:{port}/api/workers", auth=("ops", "secret"), timeout=10)
        assert with_password.status_code == 200
        assert "unauthenticated" not in flower.log.read_text()
    finally:
        processes.stop()


def _answers(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


def test_a_workers_metrics_endpoint_listens_on_loopback_by_default(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    processes = LocalCluster(settings.with_overrides(metrics_port=port), tmp_path, concurrency=1, cwd=ROOT)
    worker = processes.start_worker()
    try:
        poll(lambda: _answers(f"http://127.0.0.1:{port}/metrics"), timeout=90, what="the metrics endpoint")
        assert listening(port) == {"127.0.0.1"}, (listening(port), worker.tail(20))
    finally:
        processes.stop()


def test_a_workers_metrics_address_is_a_setting(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    wide = settings.with_overrides(metrics_port=port, metrics_address="0.0.0.0")
    processes = LocalCluster(wide, tmp_path, concurrency=1, cwd=ROOT)
    processes.start_worker()
    try:
        poll(lambda: _answers(f"http://127.0.0.1:{port}/metrics"), timeout=90, what="the metrics endpoint")
        assert listening(port) == {"0.0.0.0"}
    finally:
        processes.stop()
