"""`wfe test`: a definition's cases, one line each, exit 1 if any fails, 2 for a bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.test_settings_cli import wfe
from tests.testing.test_harness import DAY

pytestmark = pytest.mark.long


ROOT = Path(__file__).resolve().parents[2]


def test_the_example_workflows_cases_all_pass(tmp_path: Path) -> None:
    files = sorted(str(p) for p in (ROOT / "config" / "workflows").iterdir())
    result = wfe(tmp_path, "test", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    passed = [line for line in lines if line.startswith("PASS ")]
    # each example covers its happy path, a recovered transient error and a fatal one
    assert len(passed) == 10
    assert "PASS ib-review 1.0.0 the editor rejects the draft" in lines
    assert lines[-1] == "10 passed, 0 failed"


def test_a_failing_case_is_one_line_saying_what_differed_and_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "daily.yaml"
    path.write_text(yaml.safe_dump(DAY))
    result = wfe(tmp_path, "test", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "PASS daily 1.0.0 a day later, approved",
        "FAIL daily 1.0.0 expects what does not happen: status: expected failed, got completed; "
        "steps.send: expected succeeded, got skipped; output: expected {'send': {'sent': 2}}, got {}",
        "PASS daily 1.0.0 nobody answers",
        "2 passed, 1 failed",
    ]
    document = json.loads(wfe(tmp_path, "test", str(path), "--json").stdout)
    assert (document["passed"], document["failed"]) == (2, 1)
    assert document["cases"][0]["path"] == ["fetch", "wait_a_day", "check", "send"]


def test_an_invalid_definition_is_one_line_on_stderr_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**DAY, "tests": [{"name": "x", "mocks": {"nobody": 1}}]}))
    result = wfe(tmp_path, "test", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"wfe: error: {path}: tests[0].mocks.nobody: no step of this workflow runs this agent"
    ]
    missing = wfe(tmp_path, "test", str(tmp_path / "nowhere.yaml"))
    assert missing.returncode == 2
    assert len(missing.stderr.splitlines()) == 1


def test_an_agent_no_case_mocks_runs_from_the_modules_named_in_the_settings(tmp_path: Path) -> None:
    (tmp_path / "my_agents.py").write_text(
        "from workflow_engine import agent\n\n"
        "@agent('fetcher')\n"
        "def fetch(ctx):\n"
        "    return {'n': len(ctx.input['ids'])}\n"
    )
    case = {"name": "real fetcher", "input": {"ids": [1, 2, 3]}, "mocks": {"sender": {}}}
    case["human"], case["expect"] = {"check": {"ok": False}}, {"status": "completed"}
    path = tmp_path / "daily.yaml"
    path.write_text(yaml.safe_dump({**DAY, "tests": [case]}))
    result = wfe(tmp_path, "test", str(path), "--json", WFE_AGENT_MODULES="my_agents")
    assert result.returncode == 0, result.stdout + result.stderr
    [ran] = json.loads(result.stdout)["cases"]
    assert ran["passed"] and ran["path"] == ["fetch", "wait_a_day", "check"]
    without = wfe(tmp_path, "test", str(path))
    assert without.returncode == 1
    assert "agent fetcher ran, and is neither mocked by the case nor registered" in without.stdout
