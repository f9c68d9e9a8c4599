"""deploy/supervisord.conf run by a real supervisord: every process starts, a worker killed is
started again on its own while the API and the coordinator run on, and work still completes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import FAST, broker_settings
from tests.support import services
from tests.support.polling import poll
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.processes import settings_env
from workflow_engine.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BIN = Path(sys.executable).parent
CONF = ROOT / "deploy" / "supervisord.conf"


def supervisorctl(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "supervisorctl"), "-c", str(CONF), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout


def states(env: dict[str, str]) -> dict[str, tuple[str, int | None]]:
    """Each program's state and pid, from `supervisorctl status`."""
    found = {}
    for line in supervisorctl(env, "status").splitlines():
        match = re.match(r"(\S+)\s+(\w+)\s*(?:pid (\d+))?", line)
        if match:
            pid = int(match.group(3)) if match.group(3) else None
            found[match.group(1)] = (match.group(2), pid)
    return found


def all_running(env: dict[str, str], names: set[str]) -> dict[str, tuple[str, int | None]] | None:
    now = states(env)
    return now if names <= set(now) and all(now[n][0] == "RUNNING" for n in names) else None


@pytest.mark.timeout(300)
def test_supervisord_restarts_a_killed_worker_alone(
    redis_url: str, pg_databases: services.PostgresDatabases, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=pg_databases.create(), **broker_settings("redis", redis_url), **FAST, api_port=0
    )
    env_file = tmp_path / "wfe.env"
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in settings_env(settings).items()))
    env = {
        **services.environment_without_settings(),
        "WFE_HOME": str(ROOT),  # the test agents are imported from the checkout
        "WFE_BIN": str(BIN),
        "WFE_RUN_DIR": str(tmp_path),
        "WFE_ENV_FILE": str(env_file),
    }
    supervisord = subprocess.Popen(
        [str(BIN / "supervisord"), "-n", "-c", str(CONF)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    names = {"api", "coordinator:coordinator-0", "worker:worker-0", "worker:worker-1"}
    try:
        before = poll(lambda: all_running(env, names), 120, f"{names} running")
        victim = before["worker:worker-0"][1]
        assert victim is not None
        os.killpg(victim, signal.SIGKILL)  # the worker and its pool, as the OOM killer might
        after = poll(
            lambda: (now := all_running(env, names)) and now["worker:worker-0"][1] != victim and now,
            120,
            "worker-0 started again",
        )
        for name in names - {"worker:worker-0"}:
            assert after[name][1] == before[name][1], f"{name} was restarted too"
        with Engine.from_settings(settings) as engine:
            engine.register(WorkflowBuilder("supervised").agent("a", "echo").agent("b", "echo"))
            final = engine.wait(engine.start("supervised").id, timeout=90)
            assert final.status == "completed"
        log = (tmp_path / "supervisord.log").read_text()
        assert "exited: worker-0 (terminated by SIGKILL" in log, log
    finally:
        supervisorctl(env, "shutdown")
        try:
            supervisord.wait(90)
        finally:
            if supervisord.poll() is None:
                os.killpg(supervisord.pid, signal.SIGKILL)
