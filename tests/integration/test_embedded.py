"""The embedded default: SQLite and kombu's filesystem transport, real worker processes, no server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Cluster
from workflow_engine.definitions import WorkflowBuilder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded(embedded_cluster: Cluster) -> Cluster:
    return embedded_cluster


def test_sequential_workflow_on_the_embedded_default(embedded: Cluster) -> None:
    embedded.engine.register(WorkflowBuilder("e-seq").agent("a", "echo").agent("b", "echo"))
    final = embedded.wait(embedded.engine.start("e-seq").id)
    assert final.status == "completed" and final.output == {"b": {"step": "b", "attempt": 1}}


def test_fan_out_and_join_on_the_embedded_default(embedded: Cluster) -> None:
    builder = WorkflowBuilder("e-fan").agent("start", "echo")
    for branch in ("x", "y", "z"):
        builder.agent(branch, "echo", after="start")
    embedded.engine.register(builder.agent("join", "echo", after=["x", "y", "z"]))
    final = embedded.wait(embedded.engine.start("e-fan").id)
    assert final.status == "completed"
    assert [s.attempts for s in final.steps] == [1, 1, 1, 1, 1]


def test_conditions_retries_and_failures_on_the_embedded_default(embedded: Cluster) -> None:
    engine = embedded.engine
    engine.register(
        WorkflowBuilder("e-mix")
        .agent("review", "score")
        .agent("retry", "flaky", after="review", when="steps.review.score > 50", retry={"initial_delay": 0.2})
        .agent("never", "echo", after="review", when="steps.review.score <= 50")
        .agent("optional", "fatal", after="retry", required=False)
    )
    final = embedded.wait(engine.start("e-mix", {"score": 70}).id)
    assert final.status == "completed"
    assert {s.name: (s.status, s.attempts) for s in final.steps} == {
        "review": ("succeeded", 1),
        "retry": ("succeeded", 2),
        "never": ("skipped", 0),
        "optional": ("failed", 1),
    }
    engine.register(WorkflowBuilder("e-fatal").agent("a", "fatal"))
    assert embedded.wait(engine.start("e-fatal").id).status == "failed"


def wfe(
    *args: str, env: dict[str, str], cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def test_wfe_run_completes_the_document_pipeline_with_no_server(tmp_path: Path) -> None:
    env = {
        "WFE_DATABASE_URL": f"sqlite:///{tmp_path / 'wfe.db'}",
        "WFE_AGENT_MODULES": "workers.demo_agents",
        "WFE_BROKER_URL": "embedded",
    }
    result = wfe(
        "run",
        "config/workflows/ib-generation.json",
        "--input",
        '{"project_id": "p-9"}',
        "--metadata",
        '{"work_seconds": 0.05}',
        "--json",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "completed" and document["percent_complete"] == 100.0
    assert [s["name"] for s in document["steps"]] == [
        "enrich",
        "compose",
        "write",
        "validate",
        "assemble",
        "export",
    ]
    write = next(s for s in document["steps"] if s["name"] == "write")  # a map: one item per section
    assert write["type"] == "map" and write["items"]["done"] == write["items"]["total"] == 3
    assert document["output"] == {"export": {"files": ["p-9.pdf", "p-9.docx"]}}


def test_wfe_run_exits_3_when_the_workflow_waits_for_a_person(tmp_path: Path) -> None:
    env = {
        "WFE_DATABASE_URL": f"sqlite:///{tmp_path / 'wfe.db'}",
        "WFE_AGENT_MODULES": "workers.demo_agents",
    }
    result = wfe(
        "run",
        "config/workflows/ib-review.yaml",
        "--input",
        '{"project_id": "p-3"}',
        "--metadata",
        '{"work_seconds": 0.01, "no_flakes": true}',
        env=env,
    )
    assert result.returncode == 3, result.stderr
    assert "execution waiting: waiting for approve (human task)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_wfe_run_refuses_unknown_agents_before_running_anything(tmp_path: Path) -> None:
    env = {"WFE_DATABASE_URL": f"sqlite:///{tmp_path / 'wfe.db'}", "WFE_AGENT_MODULES": ""}
    result = wfe("run", "config/workflows/ib-generation.json", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("wfe: error: invalid workflow definition")
    assert "unknown agent 'regdata'" in result.stderr
    assert not (tmp_path / "wfe.db").exists() or "execution" not in result.stdout


def test_the_wfe_command_drives_executions_end_to_end(embedded: Cluster) -> None:
    from workflow_engine.processes import settings_env

    env = settings_env(embedded.settings)
    embedded.engine.register(
        WorkflowBuilder("e-cli")
        .agent("a", "echo")
        .human("approve", after="a")
        .agent("b", "echo", after="approve")
    )
    submitted = wfe("submit", "e-cli", "--input", '{"n": 1}', "--idempotency-key", "cli-1", env=env)
    assert submitted.returncode == 0, submitted.stderr
    execution = submitted.stdout.strip()
    again = wfe("submit", "e-cli", "--idempotency-key", "cli-1", env=env)
    assert again.stdout.strip() == execution
    watched = wfe("watch", execution, env=env)
    assert watched.returncode == 3, watched.stderr  # waits for a person
    assert "execution waiting: waiting for approve (human task)" in watched.stdout
    bad = wfe("complete", execution, "approve", "--data", "not json", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("wfe: error: invalid --data")
    done = wfe("complete", execution, "approve", "--data", '{"ok": true}', "--json", env=env)
    assert done.returncode == 0 and json.loads(done.stdout)["execution_id"] == execution
    final = wfe("watch", execution, "--json", env=env)
    assert final.returncode == 0 and json.loads(final.stdout)["status"] == "completed"
    status = json.loads(wfe("status", execution, "--json", env=env).stdout)
    assert [(s["name"], s["status"]) for s in status["steps"]] == [
        ("a", "succeeded"),
        ("approve", "succeeded"),
        ("b", "succeeded"),
    ]
    logs = json.loads(wfe("logs", execution, "--step", "approve", "--json", env=env).stdout)
    assert [(entry["step_name"], entry["completed_by"]) for entry in logs] == [
        ("approve", os.environ.get("USER", "cli"))
    ]
    listed = json.loads(wfe("list", "--workflow", "e-cli", "--json", env=env).stdout)
    assert listed["total"] == 1 and listed["executions"][0]["execution_id"] == execution
    refused = wfe("cancel", execution, env=env)
    assert refused.returncode == 1 and "cannot go from completed to cancelled" in refused.stderr
    missing = wfe("status", "no-such-execution", env=env)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_pause_resume_and_cancel_from_the_command_line(embedded: Cluster) -> None:
    from workflow_engine.processes import settings_env

    env = settings_env(embedded.settings)
    embedded.engine.register(
        WorkflowBuilder("e-ctl")
        .agent("a", "slow", config={"seconds": 30, "cooperative": True})
        .agent("b", "echo")
    )
    execution = wfe("submit", "e-ctl", env=env).stdout.strip()
    paused = json.loads(wfe("pause", execution, "--json", env=env).stdout)
    assert paused["status"] == "paused"
    assert json.loads(wfe("resume", execution, "--json", env=env).stdout)["status"] == "running"
    cancelled = wfe("cancel", execution, "--reason", "testing", env=env)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"{execution}: cancelled"
    embedded.wait_for(lambda: embedded.engine.logs(execution)[0]["status"] != "running", what="a stopped")
    assert [(e["step_name"], e["status"]) for e in embedded.engine.logs(execution)] == [("a", "cancelled")]
