"""A user's own agents, found from anywhere: a module name is imported from the directory `wfe`
runs in (or the path), and a `.py` file's path is imported from its folder, by `wfe run` and by
the worker it starts alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import services

pytestmark = pytest.mark.slow

AGENTS = """
from workflow_engine import agent


@agent("hello")
def hello(ctx):
    return {"greeting": "hi " + ctx.input["name"]}
"""
FLOW = "name: hello-flow\nversion: 1.0.0\nsteps:\n  - name: greet\n    agent: hello\n"


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", "run", *args],
        cwd=cwd,
        env=services.environment_without_settings(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("agents", ["project/my_agents.py", "my_agents"])
def test_wfe_run_finds_the_users_agents(tmp_path: Path, agents: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_agents.py").write_text(AGENTS)
    (project / "flow.yaml").write_text(FLOW)
    # a path from anywhere; a module name from the folder that holds it
    cwd = tmp_path if agents.endswith(".py") else project
    flow = "project/flow.yaml" if agents.endswith(".py") else "flow.yaml"
    done = run(cwd, flow, "--agents", agents, "--input", '{"name": "bo"}', "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"greet": {"greeting": "hi bo"}}


def test_an_agent_file_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    done = run(tmp_path, "flow.yaml", "--agents", "nowhere/agents.py")
    assert done.returncode != 0 and done.stderr.count("\n") == 1
    assert "cannot import agent module 'nowhere/agents.py': no such file" in done.stderr
