"""`wfe dev`: one command on the embedded default runs the coordinator, a worker, the API and the
monitor; it makes a local admin once, prints a sign-in link, starts the worker again when an
agent file changes, and stops everything on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support import services
from tests.support.polling import poll
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.engine import Engine
from workflow_engine.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENTS = """
from workflow_engine import agent


@agent("greet")
def greet(ctx):
    return {"version": VERSION}
"""


WFE = [sys.executable, "-m", "workflow_engine"]


def write_agents(folder: Path, version: int) -> None:
    (folder / "myagents.py").write_text(f"VERSION = {version}\n{AGENTS}")


def start_dev(folder: Path) -> tuple[subprocess.Popen[bytes], Path]:
    out = folder / "dev.out"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            [*WFE, "dev", "--port", "0", "--agents", "myagents", "--reload-interval", "0.1"],
            cwd=folder,
            env={**services.environment_without_settings(), "PYTHONUNBUFFERED": "1"},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, out


def stop_with_ctrl_c(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the process group, as a terminal sends it; everything must stop promptly."""
    family = [process.pid, *(c.pid for c in psutil.Process(process.pid).children(recursive=True))]
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    poll(
        lambda: (
            not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in family)
        ),
        30,
        "every process of wfe dev to stop",
    )


def test_wfe_dev_runs_everything_signs_in_and_reloads_agents(tmp_path: Path) -> None:
    write_agents(tmp_path, 1)
    process, out = start_dev(tmp_path)
    try:
        text = poll(lambda: "Ctrl-C stops everything" in out.read_text() and out.read_text(), 90, "wfe dev")
        assert re.search(r"created the admin 'dev' \(password \S+", text), text
        assert (
            text.splitlines()[0]
            == f"database sqlite:///{tmp_path / 'wfe.db'} (no env file; settings from the environment)"
        )
        link = re.search(r"monitor: (http://127\.0\.0\.1:(\d+)/ui/sign-in/\S+)", text)
        assert link, text
        base = f"http://127.0.0.1:{link.group(2)}"
        with httpx.Client(base_url=base) as browser:
            signed_in = browser.get(link.group(1))
            assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/executions"
            assert browser.get("/ui/executions").status_code == 200  # the session cookie works
            assert httpx.get(f"{base}/ui/sign-in/not-the-secret").status_code == 404
            assert httpx.get(f"{base}/ui/executions").status_code in (303, 307)  # no cookie: to login

        settings = Settings(database_url=f"sqlite:///{tmp_path / 'wfe.db'}")
        with Engine.from_settings(settings) as engine:
            engine.register(WorkflowBuilder("hello").agent("a", "greet"))
            first = engine.wait(engine.start("hello").id, timeout=60)
            assert first.status == "completed" and first.output == {"a": {"version": 1}}

            write_agents(tmp_path, 2)
            os.utime(tmp_path / "myagents.py", ns=(1, 10**18))  # a distinct mtime, whatever the clock
            poll(
                lambda: (
                    "myagents.py changed: the worker and the coordinator started again" in out.read_text()
                ),
                30,
                "the reload",
            )
            second = engine.wait(engine.start("hello").id, timeout=90)
            assert second.status == "completed" and second.output == {"a": {"version": 2}}, out.read_text()
    finally:
        stop_with_ctrl_c(process)
    assert process.returncode == 0, out.read_text()

    again, out = start_dev(tmp_path)  # the admin exists now: made once
    try:
        text = poll(lambda: "Ctrl-C stops everything" in out.read_text() and out.read_text(), 90, "wfe dev")
        assert "created the admin" not in text and "/ui/sign-in/" in text
    finally:
        stop_with_ctrl_c(again)
