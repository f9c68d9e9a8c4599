"""`wfe validate` and `wfe register` check a definition's agents before a version is burned, and
`wfe workflows delete` deletes a version that never ran: a real `wfe` process on SQLite and on
PostgreSQL, with worker heartbeats written by the real Heartbeat class."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support import services
from tests.support.harness import Harness
from workflow_engine.clock import FixedClock, SystemClock
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store.opening import store_for
from workflow_engine.worker.heartbeat import Heartbeat

pytestmark = pytest.mark.long


FLOW = """\
name: flow
version: 1.0.0
steps:
  - {name: fetch, agent: echo}
  - {name: enrich, agent: %s}
"""
AGENTS_MODULE = """\
from workflow_engine import agent


@agent("echo")
def echo(ctx):
    return {}


@agent("regdata")
def regdata(ctx):
    return {}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, new_database_url: Callable[[str], str]) -> str:
    return new_database_url(request.param)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(FLOW % "regdata")
    (tmp_path / "typo.yaml").write_text(FLOW % "regdatta")
    (tmp_path / "my_agents.py").write_text(AGENTS_MODULE)
    return tmp_path


def wfe(folder: Path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", *args],
        capture_output=True,
        text=True,
        env={**services.environment_without_settings(), "WFE_DATABASE_URL": url, **env},
        cwd=folder,
        timeout=60,
        check=False,
    )


def beat(url: str, agents: list[str], ago: timedelta = timedelta(0)) -> None:
    """A worker process's heartbeat, as a worker writes it, ``ago`` in the past."""
    store = store_for(url, clock=FixedClock(SystemClock().now() - ago))
    try:
        Heartbeat(store, agents, ["wfe.steps"], interval=5.0).beat()
    finally:
        store.dispose()


def registered(folder: Path, url: str) -> list[tuple[str, str]]:
    listed = wfe(folder, url, "workflows", "--json")
    assert listed.returncode == 0, listed.stderr
    return [(w["name"], w["version"]) for w in json.loads(listed.stdout)]


# a heartbeat counts as live for WFE_WORKER_LOST_AFTER seconds: long enough for any slow machine
LIVE = {"WFE_WORKER_LOST_AFTER": "3600"}


def test_register_refuses_an_agent_no_live_worker_serves_and_burns_nothing(folder: Path, url: str) -> None:
    beat(url, ["echo", "regdata"])
    refused = wfe(folder, url, "register", "typo.yaml", **LIVE)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "wfe: error: flow 1.0.0: unknown agent 'regdatta' (steps[1] 'enrich'); known agents: echo, "
        "regdata; to register it anyway: --allow-unknown-agents"
    ]
    assert registered(folder, url) == []
    good = wfe(folder, url, "register", "good.yaml", **LIVE)  # the same version, its agents served
    assert (good.returncode, good.stdout.strip(), good.stderr) == (0, "registered flow 1.0.0", "")


def test_register_takes_an_unknown_agent_when_allowed_and_says_so(folder: Path, url: str) -> None:
    beat(url, ["echo", "regdata"])
    allowed = wfe(folder, url, "register", "typo.yaml", "--allow-unknown-agents", "--json", **LIVE)
    assert allowed.returncode == 0, allowed.stderr
    assert "unknown agent 'regdatta'" in allowed.stderr and len(allowed.stderr.splitlines()) == 1
    agents = json.loads(allowed.stdout)["agents"]
    assert agents["checked"] and agents["unknown"] == {"regdatta": ["steps[1] 'enrich'"]}
    assert registered(folder, url) == [("flow", "1.0.0")]


def test_a_worker_not_seen_within_worker_lost_after_is_not_live(folder: Path, url: str) -> None:
    beat(url, ["echo"], ago=timedelta(minutes=5))
    # nothing is known to check against: registered, and stderr says agents were not checked
    taken = wfe(folder, url, "register", "typo.yaml", WFE_WORKER_LOST_AFTER="30")
    assert taken.returncode == 0 and taken.stdout.strip() == "registered flow 1.0.0"
    assert taken.stderr.startswith("wfe: warning: agents not checked: no live worker")
    assert "--agents MODULES" in taken.stderr


def test_register_checks_against_local_modules_when_no_worker_is_live(folder: Path, url: str) -> None:
    refused = wfe(folder, url, "register", "typo.yaml", "--agents", "my_agents")
    assert refused.returncode == 2 and "known agents: echo, regdata" in refused.stderr
    assert registered(folder, url) == []


def test_validate_checks_agents_against_local_modules(folder: Path, url: str) -> None:
    typo = wfe(folder, url, "validate", "typo.yaml", "--agents", "my_agents")
    assert typo.returncode == 1 and typo.stdout == ""
    assert typo.stderr.splitlines() == [
        "typo.yaml: steps[1] 'enrich'.agent: unknown agent 'regdatta' (known: echo, regdata)"
    ]
    good = wfe(folder, url, "validate", "good.yaml", "--agents", "my_agents")
    assert (good.returncode, good.stdout.strip(), good.stderr) == (
        0,
        "good.yaml: valid: flow 1.0.0, 2 steps",
        "",
    )
    allowed = wfe(folder, url, "validate", "typo.yaml", "--agents", "my_agents", "--allow-unknown-agents")
    assert allowed.returncode == 0 and "note: unknown agent 'regdatta'" in allowed.stderr


def test_validate_checks_agents_against_the_live_workers(folder: Path, url: str) -> None:
    beat(url, ["echo", "regdata"])
    typo = wfe(folder, url, "validate", "typo.yaml", "--json", **LIVE)
    assert typo.returncode == 1
    document = json.loads(typo.stdout)
    assert [p["location"] for p in document["problems"]] == ["steps[1] 'enrich'.agent"]
    assert document["agents"]["known"] == ["echo", "regdata"]


def test_validate_without_workers_or_modules_says_it_could_not_check_agents(tmp_path: Path) -> None:
    (tmp_path / "typo.yaml").write_text(FLOW % "regdatta")
    nowhere = f"sqlite:///{tmp_path / 'absent.db'}"
    result = wfe(tmp_path, nowhere, "validate", "typo.yaml")
    assert result.returncode == 0 and "valid: flow 1.0.0" in result.stdout
    assert result.stderr.startswith("typo.yaml: note: agents not checked: no live worker reports its agents")
    assert not (tmp_path / "absent.db").exists()  # validating made no database


def test_validate_with_an_unreachable_database_says_it_could_not_check_agents(tmp_path: Path) -> None:
    (tmp_path / "typo.yaml").write_text(FLOW % "regdatta")
    result = wfe(tmp_path, "postgresql://nobody@127.0.0.1:1/none", "validate", "typo.yaml")
    assert result.returncode == 0 and "valid: flow 1.0.0" in result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("typo.yaml: note: agents not checked against live workers: could not read")
    assert line.endswith("; pass --agents MODULES")


@pytest.fixture
def harness(url: str) -> Iterator[Harness]:
    harness = Harness(url)
    try:
        yield harness
    finally:
        harness.close()


def test_delete_frees_a_version_that_never_ran_and_refuses_one_that_ran(
    folder: Path, url: str, harness: Harness
) -> None:
    assert wfe(folder, url, "register", "typo.yaml", "--allow-unknown-agents").returncode == 0
    deleted = wfe(folder, url, "workflows", "delete", "flow", "1.0.0")
    assert (deleted.returncode, deleted.stdout.strip()) == (0, "deleted flow 1.0.0"), deleted.stderr
    assert registered(folder, url) == []
    again = wfe(folder, url, "register", "good.yaml")  # the same version, another body
    assert again.returncode == 0, again.stderr
    assert harness.store.get_workflow("flow", "1.0.0").document["steps"][1]["agent"] == "regdata"

    harness.agent("echo", lambda ctx: {})
    harness.agent("regdata", lambda ctx: {})
    ran = harness.start("flow").id
    refused = wfe(folder, url, "workflows", "delete", "flow", "1.0.0")
    assert refused.returncode == 1 and refused.stderr.splitlines() == [
        f"wfe: error: flow 1.0.0 has run (execution {ran}): a version that ran cannot be deleted"
    ]
    assert registered(folder, url) == [("flow", "1.0.0")]
    absent = wfe(folder, url, "workflows", "delete", "flow", "9.9.9")
    assert absent.returncode == 2 and "not found" in absent.stderr and len(absent.stderr.splitlines()) == 1


def test_delete_respects_who_owns_the_name_and_what_starts_the_version(
    folder: Path, url: str, harness: Harness
) -> None:
    alice = harness.store.create_user("alice", None, "operator").id
    harness.store.register_workflow(WorkflowBuilder("hers").agent("a", "echo").build(), created_by=alice)
    theirs = wfe(folder, url, "workflows", "delete", "hers", "1.0.0")
    assert theirs.returncode == 2
    assert theirs.stderr.strip() == (
        "wfe: error: workflow hers belongs to user 'alice': only its owner or an admin may delete "
        "its versions"
    )
    assert wfe(folder, url, "register", "good.yaml").returncode == 0
    made = wfe(folder, url, "schedule", "create", "nightly", "--workflow", "flow", "--cron", "0 2 * * *")
    assert made.returncode == 0, made.stderr
    scheduled = wfe(folder, url, "workflows", "delete", "flow", "1.0.0")
    assert scheduled.returncode == 1 and "schedule 'nightly'" in scheduled.stderr
    assert registered(folder, url) == [("flow", "1.0.0"), ("hers", "1.0.0")]
